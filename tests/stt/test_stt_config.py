"""Config blobs of the cloud STT plugins: defaults, validation errors, the missing-key start-up
error, and discovery of both plugins through their entry points."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from voicehost.cli import cli
from voicehost.config import Settings, resolve_providers
from voicehost.errors import ConfigError
from voicehost.plugins import load_plugin_host
from voicehost_deepgram_stt import DEFAULT_CONFIG as DG
from voicehost_deepgram_stt import DeepgramSTTConfig, DeepgramTranscriptionProvider
from voicehost_openai_stt import DEFAULT_CONFIG as OA
from voicehost_openai_stt import OpenAISTTConfig, OpenAITranscriptionProvider

OPENAI = {**OA, "api_key": "sk-test"}
DEEPGRAM = {**DG, "api_key": "dg-test"}


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"api_key": ""}, "api_key"),
        ({"model": ""}, "model"),
        ({"turn_detection": {"type": "push_to_talk"}}, "turn_detection.type"),
        ({"turn_detection": {"type": "server_vad", "threshold": 1.5}}, "turn_detection.threshold"),
        (
            {"turn_detection": {"type": "server_vad", "silence_duration_ms": -5}},
            "turn_detection.silence_duration_ms",
        ),
        (
            {"turn_detection": {"type": "semantic_vad", "eagerness": "eager"}},
            "turn_detection.eagerness",
        ),
        ({"turn_detection": "server_vad"}, "turn_detection"),
        ({"noise_reduction": "studio"}, "noise_reduction"),
        ({"base_url": "api.openai.com/v1"}, "base_url"),
        ({"websocket_base_url": "ftp://x"}, "websocket_base_url"),
        ({"language": 7}, "language"),
        ({"reconnect_attempts": "five"}, "reconnect_attempts"),
        ({"modle": "whisper-1"}, "has unknown key.s. modle"),
        (
            {"turn_detection": {"type": "server_vad", "silence_ms": 200}},
            "turn_detection has unknown key.s. silence_ms",
        ),
    ],
)
def test_openai_rejects_bad_values(change: dict[str, Any], key: str) -> None:
    config = {**OPENAI, **change}
    with pytest.raises(ConfigError, match=rf"\[stt\.openai\] {key}"):
        OpenAITranscriptionProvider().validate_config(config)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"api_key": "  "}, "api_key"),
        ({"model": None}, "model"),
        ({"interim_results": "yes"}, "interim_results"),
        ({"interim_results": False}, "utterance_end_ms"),
        ({"endpointing": -1}, "endpointing"),
        ({"endpointing": True}, "endpointing"),
        ({"utterance_end_ms": "1s"}, "utterance_end_ms"),
        ({"keywords": [""]}, "keywords"),
        ({"keywords": {"a": 1}}, "keywords"),
        ({"base_url": "wss://api.deepgram.com"}, "base_url"),
        ({"keepalive_interval_s": -1}, "keepalive_interval_s"),
        ({"keyterms": ["x"]}, "has unknown key.s. keyterms"),
    ],
)
def test_deepgram_rejects_bad_values(change: dict[str, Any], key: str) -> None:
    config = {**DEEPGRAM, **change}
    with pytest.raises(ConfigError, match=rf"\[stt\.deepgram\] {key}"):
        DeepgramTranscriptionProvider().validate_config(config)


def test_openai_defaults() -> None:
    assert OA["api_key"] == "${OPENAI_API_KEY}"
    config = OpenAISTTConfig.from_config(OPENAI)
    assert config.model == "gpt-4o-transcribe"
    assert config.base_url == "https://api.openai.com/v1"
    assert config.websocket_base_url == "wss://api.openai.com/v1"
    assert config.turn_detection == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
    }
    assert config.stream.reconnect_attempts == 5
    assert config.stream.reconnect_base_delay_s == 1.0
    assert config.stream.reconnect_buffer_ms == 2000
    assert config.stream.keepalive_interval_s is None


def test_openai_websocket_url_is_derived_from_base_url_unless_set() -> None:
    local = OpenAISTTConfig.from_config({**OPENAI, "base_url": "http://127.0.0.1:9/v1/"})
    assert (local.base_url, local.websocket_base_url) == (
        "http://127.0.0.1:9/v1",
        "ws://127.0.0.1:9/v1",
    )
    proxied = OpenAISTTConfig.from_config({**OPENAI, "websocket_base_url": "wss://proxy/v1"})
    assert proxied.websocket_base_url == "wss://proxy/v1"


def test_deepgram_defaults_and_listen_options() -> None:
    assert DG["api_key"] == "${DEEPGRAM_API_KEY}"
    config = DeepgramSTTConfig.from_config(DEEPGRAM)
    assert config.websocket_base_url == "wss://api.deepgram.com"
    assert config.stream.keepalive_interval_s == 5.0
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
    nova2 = DeepgramSTTConfig.from_config(
        {**DEEPGRAM, "model": "nova-2", "keywords": ["acme"], "endpointing": False}
    )
    options = nova2.listen_options()
    assert options["keywords"] == ["acme"] and "keyterm" not in options
    assert options["endpointing"] is False


def test_is_configured_needs_a_key() -> None:
    for provider, config in (
        (OpenAITranscriptionProvider(), OPENAI),
        (DeepgramTranscriptionProvider(), DEEPGRAM),
    ):
        assert provider.is_configured(config)
        assert not provider.is_configured({**config, "api_key": ""})


def test_both_plugins_are_discovered_through_entry_points() -> None:
    host = load_plugin_host(Settings(), environ={})
    assert isinstance(host.transcription_providers["openai"], OpenAITranscriptionProvider)
    assert isinstance(host.transcription_providers["deepgram"], DeepgramTranscriptionProvider)
    assert host.records["voicehost-openai-stt"].status == "loaded"
    assert host.records["voicehost-deepgram-stt"].status == "loaded"


@pytest.mark.parametrize(
    ("provider", "var"), [("openai", "OPENAI_API_KEY"), ("deepgram", "DEEPGRAM_API_KEY")]
)
def test_missing_key_fails_at_start_up_naming_the_variable(provider: str, var: str) -> None:
    host = load_plugin_host(Settings(), environ={})
    settings = Settings.from_dict({"stt": {"provider": provider}}, environ={})
    with pytest.raises(ConfigError, match=var):
        resolve_providers(settings, host, ("stt",))
    settings = Settings.from_dict({"stt": {"provider": provider}}, environ={var: "k-123"})
    choice = resolve_providers(settings, host, ("stt",)).stt
    assert choice is not None and choice.config["api_key"] == "k-123"
    assert choice.plugin == f"voicehost-{provider}-stt"


def test_bad_table_fails_config_check(tmp_path, monkeypatch) -> None:
    path = tmp_path / "plugins.toml"
    path.write_text(
        '[stt]\nprovider = "openai"\n[stt.openai]\nturn_detection = { type = "push_to_talk" }\n'
    )
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-1234")
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 1
    assert "turn_detection.type" in result.output


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
