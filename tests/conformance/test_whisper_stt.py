"""The conformance kit against the offline ``whisper`` STT plugin (faster-whisper ``tiny.en``,
Silero VAD) on one real recording: ``forig.wav`` of tests/data/human, a man reading "Don't
throw trash on the street." with no silence after the last word (so its final comes from the
flush in ``close()``). Slow: it loads the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from voicehost.testing.conformance import TranscriptionConformance, config_from_table
from voicehost_whisper_stt import WhisperConfig, WhisperProvider

CLIP = Path(__file__).resolve().parents[1] / "data" / "human" / "forig.wav"

pytestmark = pytest.mark.slow


class TestWhisperSTT(TranscriptionConformance):
    clip = CLIP
    clip_words = "throw trash on the street"
    # Greedy finals and no interim decodes: the same contract, a third of the CPU.
    config_table: ClassVar[dict[str, Any]] = {"beam_size": 1, "partial_interval_ms": 0}

    @pytest.fixture
    def provider(self) -> WhisperProvider:
        return WhisperProvider()

    @pytest.fixture
    def refused_config(self, provider: WhisperProvider, tmp_path: Path) -> WhisperConfig:
        """Offline, "the vendor" is the model: a model directory whose weights are garbage
        (connect() must report it as a ProviderError)."""
        (tmp_path / "model.bin").write_bytes(b"not a CTranslate2 model")
        (tmp_path / "config.json").write_text("{}")
        return config_from_table(provider, {"model": str(tmp_path)})
