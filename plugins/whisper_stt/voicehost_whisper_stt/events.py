"""What the :class:`~voicehost_whisper_stt.segmenter.Segmenter` tells the session: a caller's
speech started, an interim transcript is due, the utterance is likely complete, the caller
resumed, the utterance ended. Times are audio time (ms from the stream's start), audio is
float32 16 kHz."""

from __future__ import annotations

from typing import Literal

import attrs
import numpy as np

__all__ = [
    "EndLikely",
    "EndReason",
    "Event",
    "PartialDue",
    "SpeechResumed",
    "SpeechStarted",
    "UtteranceEnded",
]

EndReason = Literal["silence", "max_length", "flush"]


@attrs.frozen
class SpeechStarted:
    """The caller started speaking. ``at_ms``: audio time of the first voiced window."""

    utterance: int
    at_ms: int


@attrs.frozen(eq=False)
class PartialDue:
    """Time for an interim transcript: ``audio`` is the utterance so far (float32, 16 kHz)."""

    utterance: int
    audio: np.ndarray
    at_ms: int


@attrs.frozen(eq=False)
class EndLikely:
    """The caller has paused long enough that the utterance's audio is complete if the pause
    lasts: ``audio`` is exactly what :class:`UtteranceEnded` will carry then. Lets the session
    start the final decode during the rest of the ``min_silence_ms`` wait (speculation).

    Attributes:
        utterance: the utterance it belongs to.
        audio: float32 16 kHz samples (pre-roll and post-roll included).
        at_ms: audio time of this event.
        start_ms: audio time where ``audio`` begins.
    """

    utterance: int
    audio: np.ndarray
    at_ms: int
    start_ms: int


@attrs.frozen
class SpeechResumed:
    """The caller spoke again after an :class:`EndLikely`: that speculation is void."""

    utterance: int


@attrs.frozen(eq=False)
class UtteranceEnded:
    """An utterance is complete.

    Attributes:
        utterance: its sequence number in the stream (1, 2 …).
        audio: its float32 16 kHz samples, pre- and post-roll included.
        start_ms: audio time where ``audio`` begins.
        speech_end_ms: audio time where the last voiced window ended.
        endpoint_ms: audio time at which the end was decided (``speech_end_ms`` plus the
            ``min_silence_ms`` wait, for ``reason == "silence"``).
        reason: ``"silence"`` (a pause), ``"max_length"`` (cut at the quietest point) or
            ``"flush"`` (the stream ended mid-utterance).
    """

    utterance: int
    audio: np.ndarray
    start_ms: int
    speech_end_ms: int
    endpoint_ms: int
    reason: EndReason


Event = SpeechStarted | PartialDue | EndLikely | SpeechResumed | UtteranceEnded
