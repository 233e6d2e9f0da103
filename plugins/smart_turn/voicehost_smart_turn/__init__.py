"""voicehost-smart-turn: offline end-of-turn detection (turn detector ``smart-turn``).

Pipecat's Smart Turn v3.2 (BSD-2-Clause; an 8 MB int8 ONNX Whisper Tiny encoder with a
linear head) on ONNX Runtime, one CPU thread: from the last 8 s of the caller's audio at
16 kHz, the probability that they finished their turn rather than paused mid-sentence. The
weights are the copy in the ``pipecat-ai`` wheel; Pipecat itself is never imported, and
nothing is downloaded. Choose it with ``[turn] provider = "smart-turn"``; its
``[turn.smart-turn]`` table is :class:`SmartTurnConfig`.

Importing the package (and registering the provider) imports neither numpy nor ONNX
Runtime: they load with the model (``preload`` or the first ``decide``).
"""

from __future__ import annotations

from collections.abc import Callable

from voicehost import TurnDetectorProvider, hookimpl
from voicehost_smart_turn.config import PROVIDER_ID, SmartTurnConfig
from voicehost_smart_turn.provider import SmartTurnDetector, SmartTurnProvider

__all__ = ["PROVIDER_ID", "SmartTurnConfig", "SmartTurnDetector", "SmartTurnProvider"]


@hookimpl
def register_turn_detectors(register: Callable[[TurnDetectorProvider], None]) -> None:
    """Register the ``smart-turn`` detector."""
    register(SmartTurnProvider())
