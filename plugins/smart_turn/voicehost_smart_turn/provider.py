"""The ``smart-turn`` end-of-turn detector: Smart Turn v3.2 on ONNX Runtime, off the loop.

One model per process (loaded by :meth:`SmartTurnProvider.preload`, or by the first
``decide``), shared by every call; each ``decide`` computes the features and runs the model
on a small shared thread pool (two workers at most, one ONNX thread each), so the event loop
never waits on it. numpy and ONNX Runtime are imported there, never at plugin import.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar, Final

from voicehost import (
    PCM16_16K,
    AudioFormat,
    ProviderError,
    TurnDecision,
    TurnDetector,
    TurnDetectorProvider,
)
from voicehost_smart_turn.config import PROVIDER_ID, SmartTurnConfig

__all__ = ["MAX_AUDIO_S", "SmartTurnDetector", "SmartTurnProvider"]

#: The model's window, s: older audio is ignored.
MAX_AUDIO_S: Final = 8.0
_MAX_BYTES: Final = int(MAX_AUDIO_S * PCM16_16K.sample_rate) * 2

#: Threads running Smart Turn for all calls of the process.
_pool = ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1), thread_name_prefix="smart-turn")


def _probability(config: SmartTurnConfig, audio: bytes) -> float:
    """Load (once) and run the model; blocking, in a pool thread."""
    from voicehost_smart_turn.model import load_model

    return load_model(config.model_file()).probability(audio)


class SmartTurnDetector(TurnDetector):
    """One call's detector. It keeps no state between questions: each ``decide`` looks at the
    audio it is given (the last 8 s of it)."""

    def __init__(self, config: SmartTurnConfig) -> None:
        self.config = config

    async def decide(self, audio: bytes) -> TurnDecision:
        """Is the turn that ends with ``audio`` complete?

        Args:
            audio: PCM16 little-endian mono 16 kHz, the latest last. Only the last 8 s are
                used; shorter audio is padded with silence in front, as Pipecat does. Empty
                audio is answered incomplete with probability 0 without running the model
                (Pipecat skips the model for an empty segment too).

        Returns:
            ``TurnDecision(probability >= threshold, probability)``. (Pipecat predicts
            complete when the probability is strictly above 0.5; the difference is one
            value.)

        Raises:
            ValueError: ``audio`` has an odd number of bytes.
            ProviderError: the model could not be loaded or failed.
        """
        if len(audio) % 2:
            raise ValueError(f"PCM16 audio must have an even number of bytes, not {len(audio)}")
        if not audio:
            return TurnDecision(False, 0.0)
        audio = audio[-_MAX_BYTES:]
        loop = asyncio.get_running_loop()
        try:
            probability = await loop.run_in_executor(_pool, _probability, self.config, audio)
        except Exception as exc:
            raise ProviderError(PROVIDER_ID, f"Smart Turn failed: {exc}") from exc
        return TurnDecision(probability >= self.config.threshold, probability)


class SmartTurnProvider(TurnDetectorProvider[SmartTurnConfig]):
    """Pipecat's Smart Turn v3.2: the probability that the caller finished their turn, from
    the last 8 s of their audio (PCM16 16 kHz); ≈ 10-100 ms on one CPU thread.

    Config: :class:`~voicehost_smart_turn.config.SmartTurnConfig` (``[turn.smart-turn]``).
    """

    id: ClassVar[str] = PROVIDER_ID
    label: ClassVar[str] = "Smart Turn v3.2 (offline)"
    config_class: ClassVar[type[SmartTurnConfig]] = SmartTurnConfig
    input_format: ClassVar[AudioFormat] = PCM16_16K
    max_audio_s: ClassVar[float] = MAX_AUDIO_S

    def preload(self, config: SmartTurnConfig) -> None:
        """Load the model now (≈ 0.1 s; blocking, before the server listens), so the first
        question does not wait for it.

        Raises:
            ConfigError: the model file is missing or not a loadable Smart Turn v3 model.
        """
        from voicehost_smart_turn.model import load_model

        load_model(config.model_file())

    def create_detector(self, config: SmartTurnConfig) -> SmartTurnDetector:
        """One call's detector (cheap: the model is shared).

        Raises:
            TypeError: ``config`` is not a :class:`SmartTurnConfig`.
        """
        if not isinstance(config, SmartTurnConfig):
            raise TypeError(f"smart-turn: config must be a SmartTurnConfig, not {type(config)}")
        return SmartTurnDetector(config)
