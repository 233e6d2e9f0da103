"""Config of the cloud TTS plugins: the typed config classes (defaults, docs, validation
errors naming the table, key and value), and start-up through the plugin host
(``[tts] provider = "openai"`` / ``"elevenlabs"``)."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

import voicehost_elevenlabs_tts
import voicehost_openai_tts
from voicehost import ConfigError
from voicehost.config import Settings, choose_provider, resolve_providers
from voicehost.config_model import describe, env_reference
from voicehost.plugins import PluginHost, load_plugin_host
from voicehost_elevenlabs_tts import ElevenLabsConfig, ElevenLabsSpeechProvider
from voicehost_openai_tts import OpenAISpeechProvider, OpenAITTSConfig

KEYS = {"OPENAI_API_KEY": "sk-env", "ELEVENLABS_API_KEY": "xi-env"}
OPENAI_OK: dict[str, Any] = {}
ELEVEN_OK: dict[str, Any] = {"voice_id": "voice123"}


def _host() -> PluginHost:
    host = PluginHost()
    host.register(voicehost_openai_tts, name="voicehost-openai-tts")
    host.register(voicehost_elevenlabs_tts, name="voicehost-elevenlabs-tts")
    return host


def _start(provider_id: str, table: dict[str, Any], environ: dict[str, str] = KEYS) -> Any:
    """``[tts.<provider_id>] = table`` parsed as at start-up: the provider's config object."""
    settings = Settings.from_dict(
        {"tts": {"provider": provider_id, provider_id: table}}, environ=environ
    )
    return choose_provider(settings, _host(), "tts").config


def test_defaults_match_the_issue():
    assert OpenAISpeechProvider.config_class is OpenAITTSConfig
    assert ElevenLabsSpeechProvider.config_class is ElevenLabsConfig
    assert env_reference(OpenAITTSConfig, "api_key") == "${OPENAI_API_KEY}"
    openai = OpenAITTSConfig()
    assert (openai.model, openai.voice) == ("gpt-4o-mini-tts", "coral")
    assert openai.base_url == "https://api.openai.com/v1"
    assert (openai.speed, openai.instructions, openai.max_retries) == (1.0, "", 0)
    assert env_reference(ElevenLabsConfig, "api_key") == "${ELEVENLABS_API_KEY}"
    eleven = ElevenLabsConfig(voice_id="v")
    assert (eleven.model_id, eleven.mode) == ("eleven_flash_v2_5", "http")
    assert eleven.base_url == "https://api.elevenlabs.io"
    assert eleven.chunk_length_schedule == [50]
    assert eleven.voice_settings.to_request() == {}


@pytest.mark.parametrize("config_class", [OpenAITTSConfig, ElevenLabsConfig])
def test_every_key_has_a_type_and_a_one_line_doc(config_class):
    for key in describe(config_class):
        assert key.type and key.doc and "\n" not in key.doc, key


def test_valid_configs_pass():
    assert _start("openai", OPENAI_OK).api_key == "sk-env"
    assert _start("elevenlabs", ELEVEN_OK).mode == "http"
    config = _start(
        "elevenlabs",
        {**ELEVEN_OK, "mode": "websocket", "voice_settings": {"speed": 1, "stability": 0.5}},
    )
    assert config.mode == "websocket"
    assert config.voice_settings.to_request() == {"speed": 1.0, "stability": 0.5}
    assert _start("openai", {"model": "tts-1", "instructions": ""}).model == "tts-1"
    assert _start("openai", {"base_url": "http://127.0.0.1:9/v1/"}).base_url == (
        "http://127.0.0.1:9/v1"
    )


@pytest.mark.parametrize(
    ("change", "key", "bad"),
    [
        ({"speed": 4.5}, "speed", "4.5"),
        ({"speed": 0.1}, "speed", "0.1"),
        ({"speed": "fast"}, "speed", "'fast'"),
        ({"speed": True}, "speed", "True"),
        ({"api_key": ""}, "api_key", "''"),
        ({"voice": ""}, "voice", "''"),
        ({"model": 5}, "model", "5"),
        ({"base_url": "ftp://api.openai.com"}, "base_url", "'ftp://api.openai.com'"),
        ({"base_url": "api.openai.com/v1"}, "base_url", "'api.openai.com/v1'"),
        ({"timeout": 0}, "timeout", "0"),
        ({"max_retries": -1}, "max_retries", "-1"),
        ({"model": "tts-1", "instructions": "calm"}, "instructions", "'calm'"),
        ({"sped": 1.0}, "sped", "did you mean 'speed'"),
    ],
)
def test_openai_bad_config_is_a_config_error_naming_the_key(
    change: dict[str, Any], key: str, bad: str
):
    with pytest.raises(ConfigError) as info:
        _start("openai", {**OPENAI_OK, **change})
    [line] = info.value.problems
    assert line.startswith("plugins.toml: [tts.openai]")
    assert key in line and bad in line, line


def test_instructions_error_names_the_model_that_refuses_them():
    with pytest.raises(ConfigError, match=r"instructions = 'calm' .*model 'tts-1-hd'"):
        _start("openai", {"model": "tts-1-hd", "instructions": "calm"})


@pytest.mark.parametrize(
    ("change", "key", "bad"),
    [
        ({"voice_id": ""}, "voice_id", "''"),
        ({"voice_id": " v "}, "voice_id", "' v '"),
        ({"voice_id": "a/b"}, "voice_id", "'a/b'"),
        ({"mode": "grpc"}, "mode", "'grpc'"),
        ({"voice_settings": {"stability": 1.5}}, "voice_settings.stability", "1.5"),
        ({"voice_settings": {"speed": 2.0}}, "voice_settings.speed", "2.0"),
        ({"voice_settings": {"use_speaker_boost": "yes"}}, "use_speaker_boost", "'yes'"),
        ({"voice_settings": {"warmth": 0.5}}, "voice_settings.warmth", "unknown key"),
        ({"voice_settings": "calm"}, "voice_settings", "'calm'"),
        ({"optimize_streaming_latency": 5}, "optimize_streaming_latency", "5"),
        ({"chunk_length_schedule": [10]}, "chunk_length_schedule", "[10]"),
        ({"chunk_length_schedule": []}, "chunk_length_schedule", "[]"),
        ({"base_url": "wss://api.elevenlabs.io"}, "base_url", "'wss://api.elevenlabs.io'"),
        ({"timeout": -1}, "timeout", "-1"),
        ({"model_id": ""}, "model_id", "''"),
        ({"mdoe": "http"}, "mdoe", "did you mean 'mode'"),
    ],
)
def test_elevenlabs_bad_config_is_a_config_error_naming_the_key(
    change: dict[str, Any], key: str, bad: str
):
    with pytest.raises(ConfigError) as info:
        _start("elevenlabs", {**ELEVEN_OK, **change})
    [line] = info.value.problems
    assert line.startswith("plugins.toml: [tts.elevenlabs]")
    assert key in line and bad in line, line


def test_a_missing_voice_id_is_a_config_error_naming_it():
    with pytest.raises(ConfigError) as info:
        _start("elevenlabs", {})
    assert info.value.problems == ["plugins.toml: [tts.elevenlabs] voice_id: is required"]


def test_bad_config_objects_cannot_be_built_so_no_request_ever_sees_one():
    # The host hands providers only parsed, frozen configs: a bad value fails at parse time,
    # before any synthesize call, and a parsed config cannot be changed afterwards.
    with pytest.raises(pydantic.ValidationError, match="speed"):
        OpenAITTSConfig(api_key="sk", speed=9)
    with pytest.raises(pydantic.ValidationError, match="mode"):
        ElevenLabsConfig(api_key="xi", voice_id="v", mode="x")
    with pytest.raises(pydantic.ValidationError, match="voice_id"):
        ElevenLabsConfig(api_key="xi")
    config = OpenAITTSConfig(api_key="sk")
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.speed = 9  # type: ignore[misc]


def test_is_configured_needs_an_api_key():
    assert OpenAISpeechProvider().is_configured(OpenAITTSConfig(api_key="sk"))
    assert not OpenAISpeechProvider().is_configured(OpenAITTSConfig())
    assert ElevenLabsSpeechProvider().is_configured(ElevenLabsConfig(api_key="xi", voice_id="v"))
    assert not ElevenLabsSpeechProvider().is_configured(ElevenLabsConfig(voice_id="v"))


def test_output_format_is_fixed_by_the_provider():
    from voicehost import MULAW_8K, PCM16_24K

    assert OpenAISpeechProvider().output_format(OpenAITTSConfig()) == PCM16_24K
    for mode in ("http", "websocket"):
        config = ElevenLabsConfig(voice_id="v", mode=mode)
        assert ElevenLabsSpeechProvider().output_format(config) == MULAW_8K


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
    with pytest.raises(ConfigError, match=rf"{variable} is not set .*\[tts\.{provider_id}\]"):
        resolve_providers(settings, _host(), kinds=("tts",))


def test_start_up_resolves_the_table_from_plugins_toml():
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
    config = runtime.tts.config
    assert isinstance(config, ElevenLabsConfig)
    assert config.api_key == "xi-env"
    assert config.mode == "websocket"
    assert config.model_id == "eleven_flash_v2_5"
    assert config.voice_settings.stability == 0.4


def test_an_api_key_in_the_table_wins_over_the_variable():
    assert _start("openai", {"api_key": "sk-table"}).api_key == "sk-table"
    assert _start("openai", {"api_key": "${MY_KEY}"}, {"MY_KEY": "sk-mine"}).api_key == "sk-mine"


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"provider": "elevenlabs"}, "[tts.elevenlabs] voice_id: is required"),
        (
            {"provider": "elevenlabs", "elevenlabs": {"voice_id": "v", "mode": "rpc"}},
            "[tts.elevenlabs] mode: must be 'http' or 'websocket', not 'rpc'",
        ),
        (
            {"provider": "openai", "openai": {"speed": 12}},
            "[tts.openai] speed: must be less than or equal to 4, not 12",
        ),
    ],
)
def test_bad_provider_table_fails_start_up(table: dict[str, Any], expected: str):
    settings = Settings.from_dict({"tts": table}, environ=KEYS)
    with pytest.raises(ConfigError) as info:
        resolve_providers(settings, _host(), kinds=("tts",))
    assert f"plugins.toml: {expected}" in info.value.problems
