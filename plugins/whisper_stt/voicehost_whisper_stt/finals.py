"""Bookkeeping of final transcripts: speculative decodes, their confirmation, and timings.

A final decode can start before the endpoint (on a segmenter ``EndLikely``, while the rest of
the ``min_silence_ms`` pause is awaited) or at it. Either way it is
reported only once *both* have happened: the decode finished (on a worker thread) and the
endpoint confirmed it (on the event loop). :class:`PendingFinal` holds that handshake; its
lock makes "who came second" unambiguous, and whoever came second makes the text the call's
context (``initial_prompt``) before the call's next decode can start.
"""

from __future__ import annotations

import threading

import attrs

from voicehost_whisper_stt.events import UtteranceEnded
from voicehost_whisper_stt.scheduler import Outcome


@attrs.frozen
class FinalTiming:
    """Where one final transcript's time went.

    Audio-time fields (ms from the start of the session's audio): ``start_ms`` (utterance
    audio begins, pre-roll included), ``speech_end_ms`` (last voiced VAD window ends),
    ``submitted_ms`` (the decode was queued: at the endpoint, or earlier when speculative),
    ``endpoint_ms`` (the pause was long enough). Wall-clock fields (ms): ``queued_ms`` waiting
    for a worker, ``inference_ms`` in Whisper.
    """

    utterance: int
    text: str
    reason: str
    speculative: bool
    start_ms: int
    speech_end_ms: int
    submitted_ms: int
    endpoint_ms: int
    queued_ms: float
    inference_ms: float

    @property
    def latency_ms(self) -> float:
        """End of caller speech → final transcript, had the audio arrived in real time: the
        later of the endpoint and the decode's end, from the last voiced window."""
        decoded = self.submitted_ms + self.queued_ms + self.inference_ms
        return max(self.endpoint_ms, decoded) - self.speech_end_ms


@attrs.define(eq=False)
class PendingFinal:
    """One final decode in flight.

    Attributes:
        utterance: the segmenter's utterance number.
        samples: length of the decoded audio (a speculation matches an endpoint only when
            the utterance and this length are equal: the audio is then identical).
        submitted_ms: audio time the decode was queued.
        speculative: queued before the endpoint.
        start_ms: audio time where the decoded audio begins.
        ended: the confirming endpoint, once it came.
        outcome: the decode's outcome, once it finished.
        discarded: the caller spoke again (or the audio changed): never report it.
        delivered: reported already.
    """

    utterance: int
    samples: int
    submitted_ms: int
    speculative: bool
    start_ms: int = 0
    ended: UtteranceEnded | None = None
    outcome: Outcome | None = None
    discarded: bool = False
    delivered: bool = False
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def matches(self, event: UtteranceEnded) -> bool:
        """True when ``event`` ends this utterance with exactly the decoded audio."""
        return self.utterance == event.utterance and self.samples == len(event.audio)

    def finish(self, outcome: Outcome) -> bool:
        """Record the decode's outcome (worker thread); True when already confirmed."""
        with self._lock:
            self.outcome = outcome
            return self.ended is not None

    def confirm(self, event: UtteranceEnded) -> Outcome | None:
        """Record the endpoint (event loop); returns the outcome when already decoded."""
        with self._lock:
            self.ended = event
            return self.outcome

    def timing(self) -> FinalTiming:
        """The :class:`FinalTiming` of a delivered, successful final."""
        assert self.ended is not None and self.outcome is not None
        event, outcome = self.ended, self.outcome
        return FinalTiming(
            utterance=event.utterance,
            text=outcome.result.text,
            reason=event.reason,
            speculative=self.speculative,
            start_ms=event.start_ms,
            speech_end_ms=event.speech_end_ms,
            submitted_ms=self.submitted_ms,
            endpoint_ms=event.endpoint_ms,
            queued_ms=outcome.queued_ms,
            inference_ms=outcome.result.inference_ms,
        )
