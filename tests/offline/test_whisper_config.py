"""The ``whisper`` provider's registration, config validation and input handling."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest

import voicehost_whisper_stt
from voicehost.contracts import MULAW_8K, PCM16_16K, PCM16_24K, TranscriptionRequest
from voicehost.errors import ConfigError, ProviderError
from voicehost.plugins import PluginHost
from voicehost_whisper_stt import DEFAULT_CONFIG, WhisperProvider, parse_config


def test_registers_through_the_voicehost_entry_point() -> None:
    eps = {ep.name: ep.value for ep in entry_points(group="voicehost")}
    assert eps.get("whisper_stt") == "voicehost_whisper_stt"
    host = PluginHost()
    record = host.register(voicehost_whisper_stt, name="voicehost-whisper-stt")
    assert record.status != "failed", record.error
    provider = host.transcription_providers["whisper"]
    assert isinstance(provider, WhisperProvider)
    assert provider.capabilities.interim_results and provider.capabilities.speech_events
    assert provider.input_formats[0] == MULAW_8K


def test_defaults_are_the_bundled_tiny_en_in_int8() -> None:
    settings = parse_config({})
    assert (settings.model, settings.compute_type, settings.language) == ("tiny.en", "int8", "en")
    assert settings.min_silence_ms == 500
    WhisperProvider().validate_config(DEFAULT_CONFIG)


def test_a_ctranslate2_directory_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"\0")
    assert parse_config({"model": str(tmp_path)}).model == str(tmp_path)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"modle": "tiny.en"}, "unknown key"),
        ({"model": "tiny.xx"}, "neither a faster-whisper model name"),
        ({"model": ""}, "model must be"),
        ({"compute_type": "int4"}, "compute_type"),
        ({"beam_size": 0}, "beam_size must be between"),
        ({"beam_size": "5"}, "beam_size must be an integer"),
        ({"threshold": 1.5}, "threshold"),
        ({"min_silence_ms": True}, "min_silence_ms must be an integer"),
        ({"partial_interval_ms": -1}, "partial_interval_ms"),
        ({"max_utterance_s": 60}, "max_utterance_s"),
        ({"language": "english!"}, "language"),
        ({"carry_context": "yes"}, "carry_context"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_config_names_the_key(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WhisperProvider().validate_config(config)


def test_directory_without_weights_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no CTranslate2 model\.bin"):
        parse_config({"model": str(tmp_path)})


def test_unsupported_input_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported input format"):
        WhisperProvider().create_session(TranscriptionRequest({}, input_format=PCM16_24K))


async def test_bad_audio_type_is_a_clear_error() -> None:
    session = WhisperProvider().create_session(TranscriptionRequest({}, input_format=PCM16_16K))
    with pytest.raises(TypeError, match="bytes-like"):
        session.send_audio("not audio")  # type: ignore[arg-type]
    assert not session.connected


async def test_a_model_missing_offline_fails_connect_without_downloading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A model name that is not in the (here empty) Hugging Face cache: local_files_only refuses.
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    session = WhisperProvider().create_session(TranscriptionRequest({"model": "base.en"}))
    with pytest.raises(ProviderError, match=r"cannot load model 'base\.en'.*offline"):
        await session.connect()
    assert not session.connected


@pytest.mark.parametrize(
    ("segment", "dropped"),
    [
        (" Thanks for watching!", True),
        (" [BLANK_AUDIO]", True),
        (" (music)", True),
        (" ...", True),
        (" Thank you.", False),
        (" Thanks for watching the kids yesterday.", False),
        (" [laughs] That is funny.", False),
    ],
)
def test_known_whisper_hallucinations_are_dropped(segment: str, dropped: bool) -> None:
    from voicehost_whisper_stt.engine import is_hallucination

    assert is_hallucination(segment) is dropped
