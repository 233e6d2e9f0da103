"""The scripted responder: rule order, fallback, hang-up, greeting, config errors."""

from __future__ import annotations

import pytest

from voicehost.errors import ConfigError
from voicehost.responders import HANG_UP, CallContext, HangUp, collect_reply
from voicehost.responders.scripted import ScriptedResponderProvider

CALL = CallContext(call_sid="CA" + "0" * 32, stream_sid="MZ" + "0" * 32)


def make(**config):
    provider = ScriptedResponderProvider()
    provider.validate_config(config)
    return provider.create(config)


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
    responder = provider.create(provider.default_config)
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
    assert fallback == provider.default_config["fallback"] and hang is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"rules": [{"match": "(unclosed", "reply": "x"}]}, r"rules\[0\]\.match is not a valid"),
        ({"rules": [{"reply": "x"}]}, r"rules\[0\]\.match must be"),
        ({"rules": [{"match": "a", "reply": 3}]}, r"rules\[0\]\.reply must be a string"),
        ({"rules": [{"match": "a", "reply": "x", "hangup": "yes"}]}, r"hangup must be true"),
        ({"rules": [{"match": "a"}]}, r"needs a reply, or hangup"),
        ({"rules": [{"match": "a", "reply": "x", "say": "y"}]}, r"unknown key\(s\): say"),
        ({"rules": "hours"}, r"rules must be a list"),
        ({"rules": ["hours"]}, r"rules\[0\] must be a table"),
        ({"greeting": 5}, r"greeting must be a string"),
        ({"fallbak": "typo"}, r"unknown key\(s\): fallbak"),
    ],
)
def test_bad_config_is_a_clear_config_error(config, message):
    with pytest.raises(ConfigError, match=message):
        ScriptedResponderProvider().validate_config(config)


def test_the_shipped_plugins_toml_script_is_valid_and_is_the_default():
    from pathlib import Path

    from voicehost.config import load_settings

    shipped = Path(__file__).resolve().parents[2] / "plugins.toml"
    if not shipped.exists():
        pytest.skip("no plugins.toml at the repository root")
    table = load_settings(shipped).table("responder", "scripted")
    provider = ScriptedResponderProvider()
    provider.validate_config(table)
    assert table == dict(provider.default_config)
