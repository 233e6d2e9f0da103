"""Test audio: sine tones in any of the host's formats."""

from __future__ import annotations

import math

import numpy as np

from voicehost.audio import ulaw_encode
from voicehost.contracts import MULAW_8K, AudioFormat

__all__ = ["tone"]


def tone(seconds: float, fmt: AudioFormat = MULAW_8K, freq: float = 440.0) -> bytes:
    """``seconds`` of a sine tone at half scale in ``fmt`` (μ-law or PCM16, mono)."""
    n = round(seconds * fmt.sample_rate)
    t = np.arange(n) / fmt.sample_rate
    pcm = (np.sin(2 * math.pi * freq * t) * 16000).astype("<i2")
    return ulaw_encode(pcm.tobytes()) if fmt.encoding == "mulaw" else pcm.tobytes()
