"""The scripted responder: rule order, fallback, hang-up, greeting, config errors."""

from __future__ import annotations

import pytest

from voicehost.config_model import parse_table
from voicehost.contracts import HANG_UP, CallContext, HangUp, collect_reply
from voicehost.errors import ConfigError
from voicehost.responders.scripted import ScriptedConfig, ScriptedResponderProvider

CALL = CallContext(call_sid="CA" + "0" * 32, stream_sid="MZ" + "0" * 32)


def parse(config):
    """``config`` parsed as the host parses a ``[responder.scripted]`` table."""
    return parse_table(ScriptedConfig, config, table="responder.scripted")


def make(**config):
    return ScriptedResponderProvider().create(parse(config))


async def test_first_matching_rule_wins_in_order():
    responder = make(
        rules=[
            {"match": r"\bhours\b", "reply": "first"},
            {"match": r"\bopening hours\b", "reply": "second"},
        ],
        fallback="fallback",
    )
    assert await collect_reply(responder.reply(CALL, "what are your opening hours")) == (
        "first",
        None,
    )


async def test_rules_match_case_insensitively_anywhere():
    responder = make(rules=[{"match": "opening", "reply": "open"}], fallback="no")
    text, _ = await collect_reply(responder.reply(CALL, "When are you OPENING today?"))
    assert text == "open"


async def test_fallback_when_nothing_matches():
    responder = make(rules=[{"match": "hours", "reply": "nine to five"}], fallback="Pardon?")
    assert await collect_reply(responder.reply(CALL, "tell me a joke")) == ("Pardon?", None)


async def test_empty_fallback_says_nothing():
    responder = make(rules=[], fallback="")
    assert [item async for item in responder.reply(CALL, "anything")] == []


async def test_hangup_rule_yields_marker_after_text():
    responder = make(rules=[{"match": "bye", "reply": "Goodbye!", "hangup": True}])
    items = [item async for item in responder.reply(CALL, "ok bye")]
    assert items == ["Goodbye!", HANG_UP]
    assert isinstance(items[-1], HangUp)


async def test_greeting_streams_configured_text_or_nothing():
    assert [t async for t in make(greeting="Hi there.").greeting(CALL)] == ["Hi there."]
    assert [t async for t in make(greeting="").greeting(CALL)] == []


async def test_default_script_greets_answers_and_hangs_up_on_goodbye():
    provider = ScriptedResponderProvider()
    responder = provider.create(ScriptedConfig())
    greeting = [t async for t in responder.greeting(CALL)]
    assert greeting and greeting[0].startswith("Hello")
    hours, hang = await collect_reply(responder.reply(CALL, "What are your hours?"))
    assert "Monday to Friday" in hours and hang is None
    who, _ = await collect_reply(responder.reply(CALL, "Who are you?"))
    assert "assistant" in who
    helped, _ = await collect_reply(responder.reply(CALL, "Help"))
    assert "opening hours" in helped
    for goodbye in ("Okay, bye.", "Goodbye!", "that's all, thanks"):
        text, hang = await collect_reply(responder.reply(CALL, goodbye))
        assert "Goodbye" in text and hang is not None, goodbye
    fallback, hang = await collect_reply(responder.reply(CALL, "The weather is nice"))
    assert fallback == ScriptedConfig().fallback and hang is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"rules": [{"match": "(unclosed", "reply": "x"}]},
            r"rules #1\.match: not a valid regular expression \(.*\): '\(unclosed'",
        ),
        (
            {"rules": [{"match": "a", "reply": "x"}, {"match": "(unclosed", "reply": "x"}]},
            r"rules #2\.match: not a valid regular expression \(.*\): '\(unclosed'",
        ),
        (
            {"rules": [{"reply": "x"}]},
            r"rules #1: needs a match \(a regular expression\) or a dtmf",
        ),
        ({"rules": [{"match": "", "reply": "x"}]}, r"rules #1\.match: .*at least 1 character"),
        (
            {"rules": [{"match": "a", "reply": 3}]},
            r"rules #1\.reply: must be a valid string, not 3",
        ),
        (
            {"rules": [{"match": "a", "reply": "x", "hangup": "yes"}]},
            r"rules #1\.hangup: must be a valid boolean, not 'yes'",
        ),
        (
            {"rules": [{"match": "a"}]},
            r"rules #1: needs a reply, a send_dtmf, a transfer or hangup = true",
        ),
        ({"rules": [{"match": "a", "reply": "x", "say": "y"}]}, r"rules #1\.say: unknown key"),
        ({"rules": "hours"}, r"rules: must be a valid list, not 'hours'"),
        ({"rules": ["hours"]}, r"rules #1: must be a valid dictionary.*, not 'hours'"),
        ({"greeting": 5}, r"greeting: must be a valid string, not 5"),
        ({"fallbak": "typo"}, r"fallbak: unknown key \(did you mean 'fallback'\?\)"),
    ],
)
def test_bad_config_is_a_clear_config_error(config, message):
    with pytest.raises(ConfigError, match=r"^plugins\.toml: \[responder\.scripted\] " + message):
        parse(config)


def test_every_problem_is_reported_one_line_each():
    with pytest.raises(ConfigError) as caught:
        parse({"greeting": 5, "rules": [{"match": "a"}, {"match": "(", "reply": "x"}]})
    assert len(caught.value.problems) == 3
    assert str(caught.value).splitlines() == caught.value.problems


def test_the_shipped_plugins_toml_script_is_valid_and_is_the_default():
    from pathlib import Path

    from voicehost.config import load_settings, parse_settings_table

    shipped = Path(__file__).resolve().parents[2] / "plugins.toml"
    if not shipped.exists():
        pytest.skip("no plugins.toml at the repository root")
    config = parse_settings_table(load_settings(shipped), ScriptedConfig, "responder", "scripted")
    assert config == ScriptedConfig()
