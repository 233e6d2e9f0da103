"""Config of the cloud TTS plugins: defaults, validation errors, and start-up through the
plugin host (``[tts] provider = "openai"`` / ``"elevenlabs"``)."""

from __future__ import annotations

from typing import Any

import pytest

import voicehost_elevenlabs_tts
import voicehost_openai_tts
from voicehost.config import Settings, resolve_providers
from voicehost.errors import ConfigError
from voicehost.plugins import PluginHost, load_plugin_host
from voicehost_elevenlabs_tts import DEFAULT_CONFIG as EL_DEFAULTS
from voicehost_elevenlabs_tts import ElevenLabsSpeechProvider
from voicehost_openai_tts import DEFAULT_CONFIG as OA_DEFAULTS
from voicehost_openai_tts import OpenAISpeechProvider

OPENAI_OK = {**OA_DEFAULTS, "api_key": "sk-test"}
ELEVEN_OK = {**EL_DEFAULTS, "api_key": "xi-test", "voice_id": "voice123"}


def test_defaults_match_the_issue():
    assert OA_DEFAULTS["api_key"] == "${OPENAI_API_KEY}"
    assert (OA_DEFAULTS["model"], OA_DEFAULTS["voice"]) == ("gpt-4o-mini-tts", "coral")
    assert OA_DEFAULTS["base_url"] == "https://api.openai.com/v1"
    assert EL_DEFAULTS["api_key"] == "${ELEVENLABS_API_KEY}"
    assert (EL_DEFAULTS["model_id"], EL_DEFAULTS["mode"]) == ("eleven_flash_v2_5", "http")
    assert EL_DEFAULTS["base_url"] == "https://api.elevenlabs.io"


def test_valid_configs_pass():
    OpenAISpeechProvider().validate_config(OPENAI_OK)
    ElevenLabsSpeechProvider().validate_config(ELEVEN_OK)
    ElevenLabsSpeechProvider().validate_config({**ELEVEN_OK, "mode": "websocket"})


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"speed": 4.5}, "speed"),
        ({"speed": 0.1}, "speed"),
        ({"speed": "fast"}, "speed"),
        ({"speed": True}, "speed"),
        ({"api_key": ""}, "api_key"),
        ({"voice": ""}, "voice"),
        ({"model": 5}, "model"),
        ({"base_url": "ftp://api.openai.com"}, "base_url"),
        ({"base_url": "api.openai.com/v1"}, "base_url"),
        ({"timeout": 0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"model": "tts-1", "instructions": "calm"}, "instructions"),
        ({"sped": 1.0}, "sped"),
    ],
)
def test_openai_bad_config_is_a_config_error_naming_the_key(change: dict[str, Any], named: str):
    with pytest.raises(ConfigError, match=named) as info:
        OpenAISpeechProvider().validate_config({**OPENAI_OK, **change})
    assert "[tts.openai]" in str(info.value)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"voice_id": ""}, "voice_id is required"),
        ({"voice_id": "a/b"}, "voice_id"),
        ({"mode": "grpc"}, "mode"),
        ({"voice_settings": {"stability": 1.5}}, "voice_settings.stability"),
        ({"voice_settings": {"speed": 2.0}}, "voice_settings.speed"),
        ({"voice_settings": {"use_speaker_boost": "yes"}}, "use_speaker_boost"),
        ({"voice_settings": {"warmth": 0.5}}, "voice_settings.warmth"),
        ({"voice_settings": "calm"}, "voice_settings"),
        ({"optimize_streaming_latency": 5}, "optimize_streaming_latency"),
        ({"chunk_length_schedule": [10]}, "chunk_length_schedule"),
        ({"chunk_length_schedule": []}, "chunk_length_schedule"),
        ({"base_url": "wss://api.elevenlabs.io"}, "base_url"),
        ({"timeout": -1}, "timeout"),
        ({"model_id": ""}, "model_id"),
    ],
)
def test_elevenlabs_bad_config_is_a_config_error_naming_the_key(change: dict[str, Any], named: str):
    with pytest.raises(ConfigError, match=named) as info:
        ElevenLabsSpeechProvider().validate_config({**ELEVEN_OK, **change})
    assert "[tts.elevenlabs]" in str(info.value)


def test_synthesize_with_a_bad_config_raises_before_any_request():
    with pytest.raises(ConfigError, match="speed"):
        OpenAISpeechProvider().synthesize("Hi.", {**OPENAI_OK, "speed": 9})
    with pytest.raises(ConfigError, match="mode"):
        ElevenLabsSpeechProvider().synthesize("Hi.", {**ELEVEN_OK, "mode": "x"})
    with pytest.raises(ConfigError, match="mode"):
        ElevenLabsSpeechProvider().synthesize_stream(_nothing(), {**ELEVEN_OK, "mode": "x"})


async def _nothing():
    return
    yield ""


def test_is_configured_needs_key_and_voice():
    assert OpenAISpeechProvider().is_configured(OPENAI_OK)
    assert not OpenAISpeechProvider().is_configured({**OPENAI_OK, "api_key": ""})
    assert ElevenLabsSpeechProvider().is_configured(ELEVEN_OK)
    assert not ElevenLabsSpeechProvider().is_configured({**ELEVEN_OK, "voice_id": ""})


def _host() -> PluginHost:
    host = PluginHost()
    host.register(voicehost_openai_tts, name="voicehost-openai-tts")
    host.register(voicehost_elevenlabs_tts, name="voicehost-elevenlabs-tts")
    return host


def test_plugins_register_their_providers_through_the_hook():
    host = _host()
    assert isinstance(host.speech_providers["openai"], OpenAISpeechProvider)
    assert isinstance(host.speech_providers["elevenlabs"], ElevenLabsSpeechProvider)


def test_installed_entry_points_load_both_plugins():
    host = load_plugin_host(Settings.from_dict({}), strict=False, environ={})
    assert host.records["voicehost-openai-tts"].status == "loaded"
    assert host.records["voicehost-elevenlabs-tts"].status == "loaded"
    assert {"openai", "elevenlabs"} <= set(host.speech_providers)


@pytest.mark.parametrize(
    ("provider_id", "variable"),
    [("openai", "OPENAI_API_KEY"), ("elevenlabs", "ELEVENLABS_API_KEY")],
)
def test_unset_api_key_variable_fails_start_up_naming_it(provider_id: str, variable: str):
    settings = Settings.from_dict(
        {"tts": {"provider": provider_id, "elevenlabs": {"voice_id": "v"}}}, environ={}
    )
    with pytest.raises(ConfigError, match=variable):
        resolve_providers(settings, _host(), kinds=("tts",))


def test_start_up_resolves_the_blob_from_plugins_toml():
    settings = Settings.from_dict(
        {
            "tts": {
                "provider": "elevenlabs",
                "elevenlabs": {
                    "voice_id": "voice123",
                    "mode": "websocket",
                    "voice_settings": {"stability": 0.4},
                },
            }
        },
        environ={"ELEVENLABS_API_KEY": "xi-env"},
    )
    runtime = resolve_providers(settings, _host(), kinds=("tts",))
    assert runtime.tts is not None
    assert runtime.tts.id == "elevenlabs"
    assert runtime.tts.config["api_key"] == "xi-env"
    assert runtime.tts.config["mode"] == "websocket"
    assert runtime.tts.config["model_id"] == "eleven_flash_v2_5"


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"provider": "elevenlabs"}, "voice_id is required"),
        ({"provider": "elevenlabs", "elevenlabs": {"voice_id": "v", "mode": "rpc"}}, "mode"),
        ({"provider": "openai", "openai": {"speed": 12}}, "speed"),
    ],
)
def test_bad_provider_table_fails_start_up(table: dict[str, Any], named: str):
    settings = Settings.from_dict(
        {"tts": table}, environ={"OPENAI_API_KEY": "sk", "ELEVENLABS_API_KEY": "xi"}
    )
    with pytest.raises(ConfigError, match=named):
        resolve_providers(settings, _host(), kinds=("tts",))
