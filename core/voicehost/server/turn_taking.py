"""When does the caller's turn end? The STT's finals, held until an end-of-turn detector
says the turn is complete (:mod:`voicehost.contracts.turns`).

Per call, with a detector configured (``[turn] provider``):

* every inbound μ-law frame is kept, the last ``max_audio_s`` of it (64 kB for 8 s);
* the detector is asked as soon as the caller's speech ends (the STT's ``on_speech_end``),
  while the STT is still decoding the final, so its answer is usually ready when the final
  comes and adds no latency; without a speech end, it is asked when the final comes;
* a final transcript (the STT's endpointing: a short pause) is held until the detector's
  answer about the caller's turn so far: its audio from shortly before the turn's first
  speech start (200 ms of pre-roll) to now, at most ``max_audio_s``, resampled to the
  detector's format (16 kHz: Smart Turn mispredicts 8 kHz phone audio that is not
  resampled, pipecat#3844);
* **complete** (probability ≥ ``threshold``) → the held finals, joined with spaces, are
  released as one transcript;
* **incomplete** → they stay held; if the caller speaks again, the next final joins them and
  the detector is asked again; if not, they are released ``incomplete_timeout_ms`` after
  the caller's speech ended (never while the caller is speaking: a final that comes late,
  after the caller went on, waits for the next final or the next end of speech);
* a detector that fails counts as complete (the caller is never left unanswered); at the end
  of the call whatever is held is released;
* with ``provisional`` (preemptive generation), the turn's text as it stands while it is not
  yet released (the held finals, and the STT's early final of the utterance still ending) is
  announced whenever it changes, and withdrawn (``None``) when the caller speaks again; a
  release commits it.

A released transcript carries the timing of its last final (:class:`FinalTiming`: the end of
the caller's speech) with ``final_at`` the moment it was released, so turn latency still runs
from the end of speech.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from voicehost import metrics
from voicehost.audio import AudioConverter
from voicehost.contracts.formats import MULAW_8K
from voicehost.contracts.turns import (
    TurnConfig,
    TurnDecision,
    TurnDetector,
    TurnDetectorProvider,
)

__all__ = ["PRE_ROLL_S", "TurnTaker"]

log = logging.getLogger(__name__)

#: Audio kept before the turn's first speech start, s (the VAD reports speech late).
PRE_ROLL_S = 0.2
_FRAME_BYTES_PER_S = 8000  # μ-law 8 kHz


class TurnTaker:
    """Holds one call's finals until its turn is complete.

    Args:
        call_sid: for logs.
        provider / config: the end-of-turn detector provider and its parsed config.
        release: called with ``(text, speech_end_at)`` when a turn ends: the joined finals
            and when the caller's speech before the last one ended (``time.monotonic()``
            s, None when unknown).
        clock: monotonic clock, s (tests).
        provisional: called with the unreleased turn's text whenever it changes, and with
            None when the caller goes on (see the module docstring); None: not announced.
    """

    def __init__(
        self,
        call_sid: str,
        provider: TurnDetectorProvider,
        config: TurnConfig,
        release: Callable[[str, float | None], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        provisional: Callable[[str | None], None] | None = None,
    ) -> None:
        self.call_sid = call_sid
        self.provider = provider
        self.config = config
        self.detector: TurnDetector = provider.create_detector(config)
        self._release = release
        self._clock = clock
        self._max_bytes = int(provider.max_audio_s * _FRAME_BYTES_PER_S)
        self._audio = bytearray()  # the last max_audio_s of the caller's μ-law
        self._received = 0  # μ-law bytes received in all (the position of the buffer's end)
        self._turn_start: int | None = None  # position of the held turn's start
        self._held: list[str] = []
        self._speech_end_at: float | None = None
        self._deciding: asyncio.Task[None] | None = None
        self._early: asyncio.Task[TurnDecision] | None = None  # asked at the speech end
        self._timer: asyncio.TimerHandle | None = None
        self._speaking = False  # between a speech start and the next speech end
        self._provisional = provisional
        self._announced: str | None = None  # the provisional text last announced
        #: every decision, ``(probability, complete, seconds it took)`` (benchmarks, tests)
        self.decisions: list[tuple[float, bool, float]] = []

    @property
    def holding(self) -> bool:
        """True while finals wait for the end of the turn."""
        return bool(self._held)

    def feed(self, ulaw: bytes) -> None:
        """One inbound frame of the caller's μ-law."""
        self._audio += ulaw
        self._received += len(ulaw)
        # trimmed a second at a time, not every frame (each trim moves the whole window)
        if len(self._audio) > self._max_bytes + _FRAME_BYTES_PER_S:
            del self._audio[: len(self._audio) - self._max_bytes]

    def speech_started(self) -> None:
        """The caller (re)started speaking: the turn goes on, no release by timeout."""
        self._speaking = True
        self._announce(None)
        self._cancel_timer()
        self._cancel_early()
        if self._deciding is not None:
            self._deciding.cancel()  # the answer is moot: more speech is coming
            self._deciding = None
        if self._turn_start is None:
            self._turn_start = max(0, self._received - int(PRE_ROLL_S * _FRAME_BYTES_PER_S))

    def speech_ended(self, at: float) -> None:
        """The caller stopped speaking at ``at`` (``time.monotonic()`` s): held finals the
        detector called incomplete are released ``incomplete_timeout_ms`` after it unless
        the caller goes on (a final for this speech may still come and be decided)."""
        self._speaking = False
        self._speech_end_at = at
        self._cancel_early()
        self._early = asyncio.get_running_loop().create_task(
            self.detector.decide(self._turn_audio())
        )
        self._early.add_done_callback(_retrieve)
        if self._held and self._deciding is None and self._timer is None:
            self._start_timer(at)

    def final(self, text: str, speech_end_at: float | None) -> None:
        """A final transcript: hold it and ask the detector."""
        text = text.strip()
        if not text:
            return
        self._held.append(text)
        self._announce(" ".join(self._held))
        if speech_end_at is not None:
            self._speech_end_at = speech_end_at
        self._cancel_timer()
        if self._deciding is not None:
            self._deciding.cancel()
        self._deciding = asyncio.get_running_loop().create_task(self._decide())

    def provisional(self, text: str) -> None:
        """The STT's early final of the utterance now ending: the turn's text would be the
        held finals and it (announced; nothing is released)."""
        text = text.strip()
        if text:  # (the STT reports its speech end later, at its endpoint)
            self._announce(" ".join([*self._held, text]))

    def flush(self) -> None:
        """Release what is held now (the call is ending)."""
        self._cancel_timer()
        self._cancel_early()
        if self._deciding is not None:
            self._deciding.cancel()
            self._deciding = None
        self._finish()

    async def aclose(self) -> None:
        """Release what is held and close the detector."""
        self.flush()
        try:
            await self.detector.aclose()
        except Exception as exc:  # closing must not fail the call's end
            log.debug("call %s: closing the turn detector: %r", self.call_sid, exc)

    # --- internals -------------------------------------------------------------------

    def _turn_audio(self) -> bytes:
        """The held turn's audio in the detector's format (at most ``max_audio_s``)."""
        start = self._received - len(self._audio)
        first = 0 if self._turn_start is None else max(0, self._turn_start - start)
        first = max(first, len(self._audio) - self._max_bytes)
        ulaw = bytes(self._audio[first:])
        fmt = self.provider.input_format
        if fmt == MULAW_8K:
            return ulaw
        converter = AudioConverter(MULAW_8K, fmt)
        return converter.convert(ulaw) + converter.flush()

    async def _decide(self) -> None:
        started = self._clock()
        early, self._early = self._early, None
        try:
            if early is not None and not early.cancelled():
                decision = await early  # asked at the speech end: usually ready by now
            else:
                decision = await self.detector.decide(self._turn_audio())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave the caller unanswered
            metrics.count_vendor_error(self.provider, "reported")
            log.warning("call %s: turn detector failed (%s); turn taken as complete", self, exc)
            self._deciding = None
            self._finish()
            return
        took = self._clock() - started
        complete = decision.complete
        self.decisions.append((decision.probability, complete, took))
        self._deciding = None
        if complete:
            self._finish()
            return
        if self._speaking:  # the caller went on: the next final (or speech end) decides
            return
        self._start_timer(self._speech_end_at if self._speech_end_at is not None else started)

    def _start_timer(self, speech_end: float) -> None:
        delay = max(0.0, speech_end + self.config.incomplete_timeout_ms / 1000 - self._clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._finish)

    def _finish(self) -> None:
        self._timer = None
        if not self._held:
            return
        text = " ".join(self._held)
        speech_end = self._speech_end_at
        self._held.clear()
        self._speech_end_at = None
        self._turn_start = None
        self._announced = None  # released: the provisional text is committed
        self._release(text, speech_end)

    def _announce(self, text: str | None) -> None:
        if self._provisional is not None and text != self._announced:
            self._announced = text
            self._provisional(text)

    def _cancel_early(self) -> None:
        if self._early is not None:
            self._early.cancel()
            self._early = None

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def __str__(self) -> str:
        return self.call_sid


def _retrieve(task: asyncio.Task[TurnDecision]) -> None:
    """Consume an early question's outcome (a cancelled or failed one nobody awaits)."""
    if not task.cancelled():
        task.exception()
