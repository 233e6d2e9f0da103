"""Is the caller still talking? A cheap energy gate on the inbound μ-law frames, for deciding
a barge-in: a back-channel ("mm-hm") or a cough is over within a few hundred milliseconds, a
real interruption goes on.

Each 20 ms frame's level is its RMS (μ-law decoded with a 256-entry table); the noise floor
follows the quietest frames (it drops at once to a quieter frame and rises slowly, 1 % a
frame), so a noisy line does not read as speech. A frame is *voiced* when its level is at
least :data:`FLOOR_RATIO` times the floor and above :data:`MIN_LEVEL` (about -50 dBFS).
"""

from __future__ import annotations

import collections

import numpy as np

from voicehost.audio import ulaw_decode

__all__ = ["FLOOR_RATIO", "MIN_LEVEL", "VoiceActivity"]

#: A voiced frame is this many times the noise floor's level, at least.
FLOOR_RATIO = 4.0
#: ... and at least this RMS (PCM16 units; about -50 dBFS).
MIN_LEVEL = 100.0
_FRAME_MS = 20
_KEPT_FRAMES = 50  # one second of levels

_DECODE = np.frombuffer(ulaw_decode(bytes(range(256))), dtype="<i2").astype(np.float64)


class VoiceActivity:
    """The caller's recent frame levels and a noise floor."""

    def __init__(self) -> None:
        self._voiced: collections.deque[bool] = collections.deque(maxlen=_KEPT_FRAMES)
        self._floor = MIN_LEVEL / FLOOR_RATIO

    def feed(self, ulaw: bytes) -> None:
        """One inbound frame (any length; 160 bytes normally)."""
        if not ulaw:
            return
        samples = _DECODE[np.frombuffer(ulaw, dtype=np.uint8)]
        level = float(np.sqrt(np.mean(samples * samples)))
        self._floor = level if level < self._floor else self._floor * 1.01
        self._voiced.append(level >= max(MIN_LEVEL, self._floor * FLOOR_RATIO))

    def voiced_ms(self, last_ms: int) -> int:
        """Milliseconds of voiced audio in the last ``last_ms`` of frames."""
        frames = min(len(self._voiced), max(0, last_ms // _FRAME_MS))
        return sum(list(self._voiced)[len(self._voiced) - frames :]) * _FRAME_MS
