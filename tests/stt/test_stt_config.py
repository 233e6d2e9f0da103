"""Config tables of the cloud STT plugins: defaults, validation errors (file, table, key and
bad value), the missing-key start-up error, and discovery of both plugins through their entry
points."""

from __future__ import annotations

import re
from typing import Any

import pytest
from click.testing import CliRunner

from voicehost import ConfigError
from voicehost.cli import cli
from voicehost.config import Settings, choose_provider, resolve_providers
from voicehost.config_model import describe
from voicehost.plugins import PluginHost, load_plugin_host
from voicehost_deepgram_stt import DeepgramSTTConfig, DeepgramTranscriptionProvider
from voicehost_openai_stt import OpenAISTTConfig, OpenAITranscriptionProvider

KEYS = {"openai": {"OPENAI_API_KEY": "sk-test"}, "deepgram": {"DEEPGRAM_API_KEY": "dg-test"}}


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return load_plugin_host(Settings(), environ={})


def choose(host: PluginHost, provider: str, table: dict[str, Any]) -> Any:
    """The ``stt`` choice for ``[stt] provider`` with ``[stt.<provider>]`` = ``table``, the key
    in the environment: exactly what ``serve`` and ``config check`` do at start-up."""
    document = {"stt": {"provider": provider, provider: table}}
    return choose_provider(Settings.from_dict(document, environ=KEYS[provider]), host, "stt")


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"api_key": ""}, "api_key: must not be empty"),
        ({"model": ""}, "model: must not be empty"),
        (
            {"turn_detection": {"type": "push_to_talk"}},
            "turn_detection[ .]type: must be 'server_vad' or 'semantic_vad', not 'push_to_talk'",
        ),
        (
            {"turn_detection": {"type": "server_vad", "threshold": 1.5}},
            "turn_detection[ .]threshold: must be less than or equal to 1, not 1.5",
        ),
        (
            {"turn_detection": {"type": "server_vad", "silence_duration_ms": -5}},
            "turn_detection[ .]silence_duration_ms: must be greater than or equal to 0, not -5",
        ),
        (
            {"turn_detection": {"type": "semantic_vad", "eagerness": "eager"}},
            "turn_detection[ .]eagerness: must be 'low', 'medium', 'high' or 'auto', not 'eager'",
        ),
        ({"turn_detection": "server_vad"}, "turn_detection: must be a table .*, not 'server_vad'"),
        (
            {"noise_reduction": "studio"},
            "noise_reduction: must be 'near_field', 'far_field' or 'none', not 'studio'",
        ),
        (
            {"base_url": "api.openai.com/v1"},
            "base_url: must be an http.s.:// URL, not 'api.openai.com/v1'",
        ),
        ({"websocket_base_url": "ftp://x"}, "websocket_base_url: must be .* URL, not 'ftp://x'"),
        ({"language": 7}, "language: must be a valid string, not 7"),
        ({"reconnect_attempts": "five"}, "reconnect_attempts: must be a valid integer, not 'five'"),
        ({"modle": "whisper-1"}, "modle: unknown key .did you mean 'model'.."),
        (
            {"turn_detection": {"type": "server_vad", "silence_ms": 200}},
            "turn_detection[ .]silence_ms: unknown key",
        ),
    ],
)
def test_openai_rejects_bad_values(host, table: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=rf"plugins\.toml: \[stt\.openai\] {problem}"):
        choose(host, "openai", table)


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"api_key": "  "}, r"\[stt\.deepgram\] api_key: must not be empty"),
        ({"model": ""}, r"\[stt\.deepgram\] model: must not be empty"),
        (
            {"interim_results": "yes"},
            r"\[stt\.deepgram\] interim_results: must be a valid boolean, not 'yes'",
        ),
        (
            {"interim_results": False},
            r"\[stt\.deepgram\]: utterance_end_ms needs interim_results = true",
        ),
        (
            {"endpointing": -1},
            r"\[stt\.deepgram\] endpointing: must be an integer of ms ≥ 0 or false, not -1",
        ),
        ({"endpointing": True}, r"\[stt\.deepgram\] endpointing: must be .* or false, not true"),
        ({"endpointing": 0.5}, r"\[stt\.deepgram\] endpointing: must be .* or false, not 0\.5"),
        ({"utterance_end_ms": "1s"}, r"\[stt\.deepgram\] utterance_end_ms: must be .*, not '1s'"),
        (
            {"keywords": [""]},
            r"\[stt\.deepgram\] keywords: must be a list of non-empty strings, not \[''\]",
        ),
        ({"keywords": [7]}, r"\[stt\.deepgram\] keywords #1: must be a valid string, not 7"),
        ({"keywords": {"a": 1}}, r"\[stt\.deepgram\] keywords: must be a valid list"),
        (
            {"base_url": "wss://api.deepgram.com"},
            r"\[stt\.deepgram\] base_url: must be an http\(s\):// URL, "
            r"not 'wss://api\.deepgram\.com'",
        ),
        (
            {"keepalive_interval_s": -1},
            r"\[stt\.deepgram\] keepalive_interval_s: must be greater than or equal to 0, not -1",
        ),
        (
            {"keyterms": ["x"]},
            r"\[stt\.deepgram\] keyterms: unknown key \(did you mean 'keywords'\?\)",
        ),
    ],
)
def test_deepgram_rejects_bad_values(host, table: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=rf"plugins\.toml: {problem}"):
        choose(host, "deepgram", table)


def test_every_problem_of_a_table_is_reported_at_once(host) -> None:
    with pytest.raises(ConfigError) as caught:
        choose(host, "deepgram", {"endpointing": -1, "modle": "nova-2", "punctuate": "no"})
    assert len(caught.value.problems) == 3


def test_openai_defaults() -> None:
    schema = {doc.name: doc for doc in describe(OpenAISTTConfig)}
    assert schema["api_key"].default == "${OPENAI_API_KEY}"
    assert all(doc.doc for doc in schema.values())  # a one-line doc per key
    config = OpenAISTTConfig(api_key="sk-test")
    assert config.model == "gpt-4o-transcribe"
    assert config.base_url == "https://api.openai.com/v1"
    assert config.websocket_origin == "wss://api.openai.com/v1"
    assert config.turn_detection.wire() == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
    }
    assert config.reconnect_attempts == 5
    assert config.reconnect_base_delay_s == 1.0
    assert config.reconnect_buffer_ms == 2000
    assert config.keepalive_interval_s == 0  # no keep-alive: the server VAD needs none
    assert "sk-test" not in repr(config)


def test_openai_websocket_url_is_derived_from_base_url_unless_set(host) -> None:
    local = choose(host, "openai", {"base_url": "http://127.0.0.1:9/v1/"}).config
    assert (local.base_url, local.websocket_origin) == (
        "http://127.0.0.1:9/v1",
        "ws://127.0.0.1:9/v1",
    )
    proxied = choose(host, "openai", {"websocket_base_url": "wss://proxy/v1"}).config
    assert proxied.websocket_origin == "wss://proxy/v1"


def test_openai_noise_reduction_off_spellings(host) -> None:
    for spelling in ("none", "", False):
        config = choose(host, "openai", {"noise_reduction": spelling}).config
        assert config.session()["audio"]["input"]["noise_reduction"] is None


def test_deepgram_defaults_and_listen_options(host) -> None:
    schema = {doc.name: doc for doc in describe(DeepgramSTTConfig)}
    assert schema["api_key"].default == "${DEEPGRAM_API_KEY}"
    assert all(doc.doc for doc in schema.values())
    config = choose(host, "deepgram", {}).config
    assert isinstance(config, DeepgramSTTConfig) and config.api_key == "dg-test"
    assert config.websocket_origin == "wss://api.deepgram.com"
    assert config.keepalive_interval_s == 5.0
    assert config.listen_options() == {
        "model": "nova-3",
        "encoding": "mulaw",
        "sample_rate": 8000,
        "channels": 1,
        "language": "en",
        "interim_results": True,
        "endpointing": 300,
        "utterance_end_ms": 1000,
        "vad_events": True,
        "smart_format": True,
        "punctuate": True,
    }
    nova2 = choose(
        host, "deepgram", {"model": "nova-2", "keywords": ["acme"], "endpointing": False}
    ).config
    options = nova2.listen_options()
    assert options["keywords"] == ["acme"] and "keyterm" not in options
    assert options["endpointing"] is False


def test_deepgram_ms_keys_take_false_or_zero_to_turn_off(host) -> None:
    table = {"endpointing": 0, "utterance_end_ms": False, "interim_results": False}
    options = choose(host, "deepgram", table).config.listen_options()
    assert options["endpointing"] is False
    assert "utterance_end_ms" not in options
    assert choose(host, "deepgram", {"keywords": " acme "}).config.keywords == ["acme"]


def test_is_configured_needs_a_key() -> None:
    for provider, config_class in (
        (OpenAITranscriptionProvider(), OpenAISTTConfig),
        (DeepgramTranscriptionProvider(), DeepgramSTTConfig),
    ):
        assert provider.config_class is config_class
        assert provider.is_configured(config_class(api_key="k-123"))
        assert not provider.is_configured(config_class())
        assert not provider.is_configured(config_class(api_key="${SOME_KEY}"))


def test_both_plugins_are_discovered_through_entry_points(host) -> None:
    assert isinstance(host.transcription_providers["openai"], OpenAITranscriptionProvider)
    assert isinstance(host.transcription_providers["deepgram"], DeepgramTranscriptionProvider)
    assert host.records["voicehost-openai-stt"].status == "loaded"
    assert host.records["voicehost-deepgram-stt"].status == "loaded"


@pytest.mark.parametrize(
    ("provider", "var"), [("openai", "OPENAI_API_KEY"), ("deepgram", "DEEPGRAM_API_KEY")]
)
def test_missing_key_fails_at_start_up_naming_the_variable(host, provider: str, var: str) -> None:
    settings = Settings.from_dict({"stt": {"provider": provider}}, environ={})
    with pytest.raises(ConfigError, match=var):
        resolve_providers(settings, host, ("stt",))
    settings = Settings.from_dict({"stt": {"provider": provider}}, environ={var: "k-123"})
    choice = resolve_providers(settings, host, ("stt",)).stt
    assert choice is not None and choice.config.api_key == "k-123"
    assert choice.plugin == f"voicehost-{provider}-stt"


def test_bad_table_fails_config_check(tmp_path, monkeypatch) -> None:
    path = tmp_path / "plugins.toml"
    path.write_text(
        '[stt]\nprovider = "openai"\n[stt.openai]\nturn_detection = { type = "push_to_talk" }\n'
    )
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-1234")
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 1
    assert re.search(r"\[stt\.openai\] turn_detection[ .]type", result.output)
    assert "push_to_talk" in result.output


@pytest.mark.parametrize(
    ("provider", "var"), [("openai", "OPENAI_API_KEY"), ("deepgram", "DEEPGRAM_API_KEY")]
)
def test_config_check_and_list_plugins(tmp_path, monkeypatch, provider: str, var: str) -> None:
    path = tmp_path / "plugins.toml"
    path.write_text(f'[stt]\nprovider = "{provider}"\n')
    monkeypatch.delenv(var, raising=False)
    runner = CliRunner()
    missing = runner.invoke(cli, ["config", "check", "--config", str(path)])
    assert missing.exit_code == 1
    assert var in missing.output
    monkeypatch.setenv(var, "secret-key-123456")
    ok = runner.invoke(cli, ["config", "check", "--config", str(path)])
    assert ok.exit_code == 0, ok.output
    assert f"[stt] speech-to-text: {provider}" in ok.output
    assert "secret-key-123456" not in ok.output  # masked
    listed = runner.invoke(cli, ["list-plugins", "--config", str(path)])
    assert listed.exit_code == 0
    rows = {line.split()[0]: line.split() for line in listed.output.splitlines()[1:] if line}
    assert rows["voicehost-openai-stt"][2:4] == ["loaded", "openai"]
    assert rows["voicehost-deepgram-stt"][2:4] == ["loaded", "deepgram"]
