"""Plugin discovery, selection, failure isolation and duplicate detection."""

from __future__ import annotations

import sys

import pytest

from voicehost.config import Settings
from voicehost.errors import PluginError
from voicehost.plugins import PluginHost, PluginSelection, load_plugin_host

from .conftest import GOOD_PLUGIN

RAISES_ON_IMPORT = """
raise RuntimeError("boom at import")
"""

HOOK_RAISES = """
from voicehost import hookimpl

@hookimpl
def register_speech_providers(register):
    raise ValueError("hook exploded")
"""

MISSPELLED_HOOK = """
from voicehost import hookimpl

@hookimpl
def register_speach_providers(register):
    pass
"""


def load(fake_eps, settings=None, environ=None, strict=False) -> PluginHost:
    return load_plugin_host(settings, strict=strict, environ=environ or {}, eps=fake_eps())


def test_good_plugin_registers_its_providers(make_dist, fake_eps):
    make_dist("vh-good", GOOD_PLUGIN, version="2.3", tts_id="goodtts", stt_id="goodstt")
    host = load(fake_eps)
    record = host.records["vh-good"]
    assert record.status == "loaded"
    assert record.version == "2.3"
    assert record.providers == {
        "stt": ["goodstt"],
        "tts": ["goodtts"],
        "responder": [],
        "conversation": [],
        "turn": [],
    }
    assert record.hooks == ["register_speech_providers", "register_transcription_providers"]
    assert host.speech_providers["goodtts"].id == "goodtts"
    assert host.owner("stt", "goodstt") == "vh-good"


def test_plugin_raising_on_import_is_recorded_and_skipped(make_dist, fake_eps, capsys):
    make_dist("vh-broken", RAISES_ON_IMPORT)
    make_dist("vh-good", GOOD_PLUGIN, tts_id="t1", stt_id="s1")
    host = load(fake_eps)
    broken = host.records["vh-broken"]
    assert broken.status == "failed"
    assert broken.error == "RuntimeError: boom at import"
    assert host.records["vh-good"].status == "loaded"
    err_lines = [line for line in capsys.readouterr().err.splitlines() if "vh-broken" in line]
    assert len(err_lines) == 1
    assert "boom at import" in err_lines[0]


def test_plugin_whose_hook_raises_is_recorded_and_providers_dropped(make_dist, fake_eps, capsys):
    make_dist("vh-hook", HOOK_RAISES)
    host = load(fake_eps)
    record = host.records["vh-hook"]
    assert record.status == "failed"
    assert record.error == "ValueError: hook exploded"
    assert host.speech_providers == {}
    assert "vh-hook" in capsys.readouterr().err


def test_misspelled_hook_fails_loudly(make_dist, fake_eps):
    make_dist("vh-typo", MISSPELLED_HOOK)
    host = load(fake_eps)
    record = host.records["vh-typo"]
    assert record.status == "failed"
    assert "register_speach_providers" in record.error
    with pytest.raises(PluginError, match="register_speach_providers"):
        load(fake_eps, strict=True)


def test_disabled_plugin_is_listed_but_never_imported(make_dist, fake_eps):
    module = make_dist("vh-off", GOOD_PLUGIN, tts_id="t", stt_id="s")
    settings = Settings.from_dict({"plugins": {"disabled": ["vh-off"]}})
    host = load(fake_eps, settings)
    assert host.records["vh-off"].status == "disabled"
    assert host.records["vh-off"].hooks == []
    assert module not in sys.modules
    assert "t" not in host.speech_providers


def test_enabled_list_loads_only_those(make_dist, fake_eps):
    make_dist("vh-a", GOOD_PLUGIN, tts_id="ta", stt_id="sa")
    module_b = make_dist("vh-b", GOOD_PLUGIN, tts_id="tb", stt_id="sb")
    host = load(fake_eps, Settings.from_dict({"plugins": {"enabled": ["vh-a"]}}))
    assert host.records["vh-a"].status == "loaded"
    assert host.records["vh-b"].status == "disabled"
    assert module_b not in sys.modules


def test_env_override_beats_the_file(make_dist, fake_eps):
    make_dist("vh-a", GOOD_PLUGIN, tts_id="ta", stt_id="sa")
    make_dist("vh-b", GOOD_PLUGIN, tts_id="tb", stt_id="sb")
    settings = Settings.from_dict({"plugins": {"enabled": ["vh-a"]}})
    host = load(fake_eps, settings, environ={"VOICEHOST_LOAD_PLUGINS": "vh-b"})
    assert host.records["vh-a"].status == "disabled"
    assert host.records["vh-b"].status == "loaded"


def test_env_override_empty_string_loads_none(make_dist, fake_eps):
    make_dist("vh-a", GOOD_PLUGIN, tts_id="ta", stt_id="sa")
    host = load(fake_eps, environ={"VOICEHOST_LOAD_PLUGINS": ""})
    assert host.records["vh-a"].status == "disabled"
    assert host.speech_providers == {}


def test_duplicate_provider_id_names_both_distributions(make_dist, fake_eps, capsys):
    make_dist("vh-first", GOOD_PLUGIN, tts_id="same", stt_id="s1")
    make_dist("vh-second", GOOD_PLUGIN, tts_id="same", stt_id="s2")
    host = load(fake_eps)
    second = host.records["vh-second"]
    assert second.status == "failed"
    assert "vh-first" in second.error and "vh-second" in second.error
    assert "'same'" in second.error
    # The first keeps its provider; none of the second's providers stay half-registered.
    assert host.owner("tts", "same") == "vh-first"
    assert "s2" not in host.transcription_providers
    with pytest.raises(PluginError, match=r"vh-first.*vh-second"):
        load(fake_eps, strict=True)


def test_strict_env_makes_import_failure_fatal(make_dist, fake_eps):
    make_dist("vh-broken", RAISES_ON_IMPORT)
    with pytest.raises(PluginError, match=r"vh-broken.*boom at import"):
        load_plugin_host(None, environ={"VOICEHOST_STRICT_PLUGINS": "1"}, eps=fake_eps())


def test_in_process_registration_matches_entry_points():
    from voicehost import SpeechProvider, hookimpl

    class Tts(SpeechProvider):
        id = "inproc"

        async def synthesize(self, text, config):
            yield b""

    class Plugin:
        @hookimpl
        def register_speech_providers(self, register):
            register(Tts())

    host = PluginHost()
    record = host.register(Plugin(), name="test-inproc")
    assert record.status == "loaded"
    assert record.providers["tts"] == ["inproc"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"enabled": ["a"], "disabled": ["b"]}, r"\]: give enabled = .* not both"),
        ({"enabled": "a"}, r"\] enabled: must be a valid list, not 'a'"),
        ({"disabled": ["a", 1]}, r"\] disabled #2: must be a valid string, not 1"),
        ({"enable": ["a"]}, r"\] enable: unknown key \(did you mean 'enabled'\?\)"),
    ],
)
def test_malformed_plugins_table(table, message):
    with pytest.raises(PluginError, match=r"^plugins\.toml: \[plugins" + message):
        PluginSelection.from_config(table, environ={})
