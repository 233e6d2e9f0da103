"""plugins.toml: loading, ${VAR} resolution, provider choice and every config error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from voicehost import ConfigError, SpeechProvider, TranscriptionProvider, hookimpl
from voicehost.config import (
    Settings,
    load_settings,
    mask_secrets,
    resolve_env,
    resolve_providers,
)
from voicehost.plugins import PluginHost


class KeyedTts(SpeechProvider):
    id = "keyed"
    default_config: Mapping[str, Any] = {
        "api_key": "${VH_TEST_KEY}",
        "voice": "coral",
        "base_url": "${VH_TEST_BASE:-https://vendor.example/v1}",
        "settings": {"speed": 1.0, "style": 0},
    }

    def validate_config(self, config):
        if not 0.25 <= config["settings"]["speed"] <= 4.0:
            raise ConfigError("[tts.keyed] settings.speed must be within 0.25-4.0")

    def is_configured(self, config):
        return bool(config["api_key"])

    async def synthesize(self, text, config):
        yield b""


class PlainStt(TranscriptionProvider):
    id = "plain"

    def create_session(self, request):
        raise NotImplementedError


class Plugin:
    @hookimpl
    def register_speech_providers(self, register):
        register(KeyedTts())

    @hookimpl
    def register_transcription_providers(self, register):
        register(PlainStt())


@pytest.fixture
def host() -> PluginHost:
    h = PluginHost()
    h.register(Plugin(), name="vh-test")
    return h


def settings(data, **env) -> Settings:
    return Settings.from_dict(data, environ=env)


def test_blob_is_defaults_merged_with_table_and_env_resolved(host):
    s = settings(
        {
            "tts": {"provider": "keyed", "keyed": {"voice": "ash", "settings": {"speed": 1.5}}},
            "stt": {"provider": "plain"},
        },
        VH_TEST_KEY="sk-123456789abc",
    )
    runtime = resolve_providers(s, host, ("stt", "tts"))
    assert runtime.tts.id == "keyed"
    assert runtime.tts.plugin == "vh-test"
    assert runtime.tts.config == {
        "api_key": "sk-123456789abc",
        "voice": "ash",
        "base_url": "https://vendor.example/v1",
        "settings": {"speed": 1.5, "style": 0},
    }
    assert runtime.stt.config == {}
    assert runtime.responder is None


def test_unset_variable_needed_by_chosen_provider_names_it(host):
    s = settings({"tts": {"provider": "keyed"}})
    with pytest.raises(
        ConfigError,
        match=r"VH_TEST_KEY is not set \(needed by \[tts\.keyed\] api_key in plugins\.toml\)",
    ):
        resolve_providers(s, host, ("tts",))


def test_unset_variable_of_an_unchosen_provider_is_not_an_error(host):
    s = settings(
        {"stt": {"provider": "plain"}, "tts": {"provider": "keyed"}, "other": {"x": "${NOPE}"}},
        VH_TEST_KEY="k",
    )
    resolve_providers(s, host, ("stt", "tts"))


def test_unknown_provider_lists_loaded_ids(host):
    s = settings({"stt": {"provider": "nosuch"}})
    with pytest.raises(
        ConfigError,
        match=r"'nosuch' is not a loaded speech-to-text provider "
        r"\(loaded: plain\)",
    ):
        resolve_providers(s, host, ("stt",))


def test_provider_validation_error_is_reported(host):
    s = settings(
        {"tts": {"provider": "keyed", "keyed": {"settings": {"speed": 9}}}}, VH_TEST_KEY="k"
    )
    with pytest.raises(ConfigError, match="speed must be within"):
        resolve_providers(s, host, ("tts",))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tts": {"provider": 3}}, "provider must be a provider id string"),
        ({"tts": "keyed"}, r"\[tts\] must be a table"),
        ({"tts": {"provider": "keyed", "keyed": "x"}}, r"\[tts\.keyed\] must be a table"),
    ],
)
def test_malformed_tables(host, data, message):
    with pytest.raises(ConfigError, match=message):
        resolve_providers(settings(data, VH_TEST_KEY="k"), host, ("tts",))


def test_resolve_env_forms():
    env = {"A": "alpha", "EMPTY": ""}
    assert resolve_env("x-${A}-y", where="t", environ=env) == "x-alpha-y"
    assert resolve_env("${B:-fallback}", where="t", environ=env) == "fallback"
    assert resolve_env("$${A}", where="t", environ=env) == "${A}"
    resolved = resolve_env({"k": ["${A}", 1, True]}, where="t", environ=env)
    assert resolved == {"k": ["alpha", 1, True]}
    with pytest.raises(ConfigError, match="EMPTY is not set"):
        resolve_env("${EMPTY}", where="t", environ=env)


def test_mask_secrets():
    masked = mask_secrets(
        {
            "api_key": "sk-abcdefghijkl1234",
            "auth_token": "short",
            "voice": "coral",
            "nested": {"secret": "0123456789abcdef"},
        }
    )
    assert masked == {
        "api_key": "***1234",
        "auth_token": "***",
        "voice": "coral",
        "nested": {"secret": "***cdef"},
    }


def test_load_settings_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("VOICEHOST_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert load_settings().data == {}  # no default file: built-in defaults
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[stt\nprovider=")
    with pytest.raises(ConfigError, match=r"bad\.toml is not valid TOML"):
        load_settings(bad)
    good = tmp_path / "good.toml"
    good.write_text('[stt]\nprovider = "plain"\n')
    monkeypatch.setenv("VOICEHOST_CONFIG", str(good))
    loaded = load_settings()
    assert loaded.path == good
    assert loaded.raw_table("stt") == {"provider": "plain"}
