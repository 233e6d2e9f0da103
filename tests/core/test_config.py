"""plugins.toml: loading, ${VAR} resolution, provider choice and every config error."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from voicehost import (
    ConfigError,
    ConfigModel,
    Field,
    ProviderConfig,
    SpeechProvider,
    TranscriptionProvider,
    env_field,
    hookimpl,
)
from voicehost.config import (
    Settings,
    load_settings,
    mask_secrets,
    resolve_env,
    resolve_providers,
)
from voicehost.plugins import PluginHost


class KeyedSettings(ConfigModel):
    speed: float = Field(1.0, ge=0.25, le=4.0, description="Speaking rate.")
    style: int = Field(0, ge=0, description="Style strength.")


class KeyedConfig(ProviderConfig):
    api_key: str = env_field("VH_TEST_KEY", description="The vendor key.")
    voice: str = Field("coral", description="Voice name.")
    base_url: str = Field("https://vendor.example/v1", description="API origin.")
    settings: KeyedSettings = Field(default_factory=KeyedSettings, description="Voice settings.")


class KeyedTts(SpeechProvider[KeyedConfig]):
    id = "keyed"
    config_class = KeyedConfig

    def is_configured(self, config):
        return bool(config.api_key)

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


def test_table_is_parsed_into_the_config_class_with_defaults_and_env(host):
    s = settings(
        {
            "tts": {
                "provider": "keyed",
                "keyed": {
                    "voice": "ash",
                    "settings": {"speed": 1.5},
                    "base_url": "${VH_TEST_BASE:-https://proxy.example/v1}",
                },
            },
            "stt": {"provider": "plain"},
        },
        VH_TEST_KEY="sk-123456789abc",
    )
    runtime = resolve_providers(s, host, ("stt", "tts"))
    assert runtime.tts.id == "keyed"
    assert runtime.tts.plugin == "vh-test"
    assert runtime.tts.config == KeyedConfig(
        api_key="sk-123456789abc",
        voice="ash",
        base_url="https://proxy.example/v1",
        settings=KeyedSettings(speed=1.5, style=0),
    )
    assert runtime.stt.config == ProviderConfig()
    assert runtime.responder is None


def test_a_config_is_frozen_and_built_directly_reads_no_environment(monkeypatch):
    monkeypatch.setenv("VH_TEST_KEY", "from-env")
    config = KeyedConfig()
    assert config.api_key == ""  # only the host reads ${VH_TEST_KEY}
    with pytest.raises(ValidationError):
        config.voice = "other"  # type: ignore[misc]


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
    with pytest.raises(
        ConfigError,
        match=r"plugins\.toml: \[tts\.keyed\] settings\.speed: "
        r"must be less than or equal to 4, not 9",
    ):
        resolve_providers(s, host, ("tts",))


def test_every_problem_of_a_table_is_reported_at_once(host):
    s = settings(
        {"tts": {"provider": "keyed", "keyed": {"voise": "x", "settings": {"style": -1}}}},
        VH_TEST_KEY="k",
    )
    with pytest.raises(ConfigError) as caught:
        resolve_providers(s, host, ("tts",))
    assert caught.value.problems == [
        "plugins.toml: [tts.keyed] settings.style: must be greater than or equal to 0, not -1",
        "plugins.toml: [tts.keyed] voise: unknown key (did you mean 'voice'?)",
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tts": {"provider": 3}}, "provider must be a provider id string, not 3"),
        ({"tts": "keyed"}, r"\[tts\] must be a table"),
        ({"tts": {"provider": "keyed", "keyed": "x"}}, r"\[tts\] keyed: unknown key"),
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
