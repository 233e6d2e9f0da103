"""One call's streaming Whisper session: convert → VAD/endpointing → scheduled inference.

Audio path, per :meth:`WhisperSession.send_audio` chunk:

1. The chunk is appended to an inbox and a drain is scheduled on the event loop
   (``call_soon``), so a burst of frames is handled in one pass and callbacks never run inside
   ``send_audio``.
2. The drain converts it to PCM16 16 kHz (``voicehost.AudioConverter``: G.711 decode and
   a stateful soxr resampler when the host passes Twilio's μ-law 8 kHz through) and runs the
   :class:`~voicehost_whisper_stt.segmenter.Segmenter` (Silero VAD, ~0.1 ms of CPU per 32 ms
   window — cheap enough for the loop; no inference happens here).
3. Its events become callbacks and jobs: ``on_speech_start`` at once, ``on_speech_end`` at
   each endpoint (with the silence waited for, so the host knows when the caller really
   stopped); interim and final transcripts are queued on the process-wide
   :class:`~voicehost_whisper_stt.scheduler.FairScheduler` and reported back on the loop
   through ``call_soon_threadsafe``.

Finals decode with ``beam_size`` and, with ``carry_context``, the call's previous final as
Whisper's ``initial_prompt``; with ``context_window_s`` too, the earlier finals that fit that
window are decoded with it, their audio before the utterance's and their text forced as the
decoder's prefix (:mod:`voicehost_whisper_stt.context`: Whisper hears noisy speech better
after the speech before it); on a noisy line (``noisy_line_db``) in Whisper's whole 30 s
window, after up to ``noisy_context_window_s`` of the call
(:func:`~voicehost_whisper_stt.context.final_context`). Interim transcripts decode greedily.
With ``speculative_final`` the final decode starts ``post_roll_ms`` into a pause (the
segmenter's ``EndLikely``) rather than at the endpoint ``min_silence_ms`` in, hiding most of
the inference behind the endpointing wait; it is reported at the endpoint, or dropped (and
skipped if not yet started) when the caller speaks again. Empty results (Whisper heard no
words) are not reported.

The caller's speech end is reported at the pause (``EndLikely``, ``post_roll_ms`` into it),
not at the endpoint, so the host's end-of-turn detector decides while the final decodes; if
the caller speaks again within ``min_silence_ms``, that is reported as a new speech start. A
speculative decode that finishes before its endpoint is announced at once with the host's
optional ``on_provisional`` (the final's text if the pause lasts: the host may start its reply
then); a speech start after it tells the host that it is void.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from voicehost import (
    PCM16_16K,
    AudioConverter,
    ProviderError,
    TranscriptionRequest,
    TranscriptionSession,
)
from voicehost_whisper_stt import vad
from voicehost_whisper_stt.config import PROVIDER_ID, WhisperConfig
from voicehost_whisper_stt.context import CallContext, final_context
from voicehost_whisper_stt.engine import Transcript, get_engine
from voicehost_whisper_stt.events import (
    EndLikely,
    Event,
    PartialDue,
    SpeechResumed,
    SpeechStarted,
    UtteranceEnded,
)
from voicehost_whisper_stt.finals import FinalTiming, PendingFinal
from voicehost_whisper_stt.scheduler import Job, Outcome, Ticket
from voicehost_whisper_stt.segmenter import Segmenter
from voicehost_whisper_stt.vad import WINDOW_MS

logger = logging.getLogger(__name__)

#: Audio kept for finals' contexts beyond ``context_window_s``, s.
CONTEXT_SLACK_S = 10.0
#: How long :meth:`WhisperSession.close` waits for queued finals before giving up, seconds.
CLOSE_TIMEOUT_S = 60.0

State = Literal["new", "open", "closing", "closed"]


class WhisperSession(TranscriptionSession):
    """A :class:`~voicehost.TranscriptionSession` on a shared local Whisper model.

    ``request.config`` must be a :class:`~voicehost_whisper_stt.config.WhisperConfig` (the
    parsed ``[stt.whisper]`` table). Besides the contract it offers :meth:`wait_idle` (await
    until every queued transcription of this call has been reported) and
    :attr:`final_timings` (one :class:`FinalTiming` per final, for benchmarks).

    Raises:
        TypeError: ``request.config`` is not a ``WhisperConfig``.
    """

    def __init__(self, request: TranscriptionRequest) -> None:
        config = request.config
        if not isinstance(config, WhisperConfig):
            raise TypeError(
                f"whisper: request.config must be a WhisperConfig, got {type(config).__name__}"
            )
        self.config: WhisperConfig = config
        self.request = request
        self._callbacks = request.callbacks
        fmt = request.input_format
        self._converter = None if fmt == PCM16_16K else AudioConverter(fmt, PCM16_16K)
        self._engine = get_engine(config)
        self._state: State = "new"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._segmenter: Segmenter | None = None
        self._ticket: Ticket | None = None
        self._inbox: list[bytes] = []
        self._odd = b""  # half a PCM16 sample carried to the next chunk
        self._drain_scheduled = False
        self._ended_utterance = 0
        self._prompt = ""
        # the audio a final's context is cut from, kept a little past the window: a decode
        # can start seconds after its endpoint on a busy machine
        widest = max(
            config.context_window_s,
            config.noisy_context_window_s if config.noisy_line_db > 0 else 0.0,
        )
        self._heard = CallContext(keep_s=widest + CONTEXT_SLACK_S)
        self._last_partial = ""
        self._outstanding = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._speculation: PendingFinal | None = None
        self._pause_reported = 0  # the utterance whose pause was reported as a speech end
        self._close_task: asyncio.Future[None] | None = None
        self.final_timings: list[FinalTiming] = []

    # --- contract ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._state == "open"

    async def connect(self) -> None:
        """Load the Silero VAD and the Whisper model off the loop (first call per process).

        Raises:
            ProviderError: the model could not be loaded (missing weights, bad directory).
        """
        if self._state != "new":
            return
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._load)
        if self._state != "new":  # closed while loading
            return
        config = self.config
        self._segmenter = Segmenter(
            vad.StreamingVad().window_probability,
            threshold=config.threshold,
            min_speech_ms=config.min_speech_ms,
            min_silence_ms=config.min_silence_ms,
            partial_interval_ms=config.partial_interval_ms,
            pre_roll_ms=config.pre_roll_ms,
            post_roll_ms=config.post_roll_ms,
            max_utterance_s=config.max_utterance_s,
            noise_gate=config.noise_gate,
            noise_history_ms=config.noise_history_ms,
            noise_onset_margin_db=config.noise_onset_margin_db,
        )
        self._ticket = self._engine.scheduler.open()
        self._state = "open"
        if self._inbox:
            self._schedule_drain()

    def _load(self) -> None:
        try:
            vad.preload()
        except Exception as exc:
            raise ProviderError(PROVIDER_ID, f"cannot load the Silero VAD model: {exc}") from exc
        self._engine.load()

    def send_audio(self, audio: bytes) -> None:
        """Queue caller audio in ``request.input_format`` (any length; odd PCM16 bytes carry).

        Audio sent before :meth:`connect` finishes is buffered; after :meth:`close` it is
        ignored.

        Raises:
            TypeError: ``audio`` is not bytes-like.
        """
        if not isinstance(audio, bytes | bytearray | memoryview):
            raise TypeError(f"audio must be bytes-like, got {type(audio).__name__}")
        if self._state in ("closing", "closed"):
            logger.debug("whisper: %d bytes after close ignored", len(audio))
            return
        self._inbox.append(bytes(audio))
        if self._state == "open":
            self._schedule_drain()

    async def close(self) -> None:
        """Flush: an utterance in progress becomes a final; wait for queued finals. Idempotent."""
        if self._close_task is None:
            self._close_task = asyncio.ensure_future(self._close())
        await asyncio.shield(self._close_task)

    # --- extras --------------------------------------------------------------------------

    async def wait_idle(self) -> None:
        """Wait until every transcription queued so far has been reported (or skipped)."""
        if self._drain_scheduled:
            self._drain()
        await self._idle.wait()

    # --- internals -----------------------------------------------------------------------

    async def _close(self) -> None:
        if self._state == "open":
            self._drain()
            tail = self._converter.flush(discard_partial=True) if self._converter else b""
            events = self._segmenter.push(_to_float(tail)) if self._segmenter else []
            if self._segmenter is not None:
                events += self._segmenter.flush()
            self._dispatch(events)
            self._state = "closing"
            try:
                await asyncio.wait_for(self._idle.wait(), CLOSE_TIMEOUT_S)
            except TimeoutError:
                logger.warning("whisper: gave up waiting for queued transcripts at close")
        if self._ticket is not None:
            self._engine.scheduler.close(self._ticket)
        self._state = "closed"
        # Release per-call state now (the soxr resampler, VAD state, buffered audio).
        self._converter = None
        self._segmenter = None
        self._inbox.clear()

    def _schedule_drain(self) -> None:
        if not self._drain_scheduled and self._loop is not None:
            self._drain_scheduled = True
            self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False
        if not self._inbox or self._segmenter is None:
            return
        data = b"".join(self._inbox)
        self._inbox.clear()
        try:
            pcm = self._odd + (self._converter.convert(data) if self._converter else data)
            whole = len(pcm) & ~1
            self._odd = pcm[whole:]
            samples = _to_float(pcm[:whole])
            self._heard.hear(samples)
            events = self._segmenter.push(samples)
        except Exception as exc:
            self._report(self._callbacks.on_error, ProviderError(PROVIDER_ID, f"audio: {exc}"))
            return
        self._dispatch(events)

    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, SpeechStarted):
                self._report(self._callbacks.on_speech_start)
            elif isinstance(event, PartialDue):
                self._submit_partial(event)
            elif isinstance(event, EndLikely):
                self._paused(event)
                if self.config.speculative_final:
                    self._void_speculation()
                    self._speculation = PendingFinal(
                        event.utterance,
                        len(event.audio),
                        event.at_ms,
                        speculative=True,
                        start_ms=event.start_ms,
                    )
                    self._submit_final(self._speculation, event.audio)
            elif isinstance(event, SpeechResumed):
                self._void_speculation()
                if self._pause_reported == event.utterance:  # the speech end was not one
                    self._pause_reported = 0
                    self._report(self._callbacks.on_speech_start)
            elif isinstance(event, UtteranceEnded):
                self._ended_utterance = event.utterance
                if self._pause_reported != event.utterance:
                    silence_ms = max(0, event.endpoint_ms - event.speech_end_ms)
                    self._speech_ended(silence_ms)
                self._pause_reported = 0
                self._end_utterance(event)

    def _paused(self, event: EndLikely) -> None:
        """The caller has been silent for ``post_roll_ms``: the host hears of the speech end
        now (its end-of-turn detector can decide while the final decodes), not at the
        endpoint; speech resuming is reported as a speech start."""
        self._pause_reported = event.utterance
        self._speech_ended(math.ceil(self.config.post_roll_ms / WINDOW_MS) * WINDOW_MS)

    def _speech_ended(self, silence_ms: int) -> None:
        """Tell the host the caller stopped speaking (``on_speech_end``, optional in the
        contract: hosts before it lack the callback), with the silence heard since the last
        voiced window, s: the post-roll at a pause (``EndLikely``), else the endpointing wait
        (``min_silence_ms``; less for a length cut or a flush)."""
        callback = getattr(self._callbacks, "on_speech_end", None)
        if callback is not None:
            self._report(callback, silence_ms / 1000)

    def _void_speculation(self) -> None:
        if self._speculation is not None:
            self._speculation.discarded = True  # skipped if not started, ignored if done
            self._speculation = None

    def _end_utterance(self, event: UtteranceEnded) -> None:
        pending = self._speculation
        self._speculation = None
        if pending is not None and pending.matches(event):
            outcome = pending.confirm(event)
            if outcome is not None:
                self._remember(outcome, pending)
                self._deliver(pending)
            return
        if pending is not None:
            pending.discarded = True
        pending = PendingFinal(
            event.utterance, len(event.audio), event.endpoint_ms, False, start_ms=event.start_ms
        )
        pending.confirm(event)
        self._submit_final(pending, event.audio)

    def _submit(self, job: Job) -> None:
        assert self._ticket is not None
        self._outstanding += 1
        self._idle.clear()
        self._engine.scheduler.submit(self._ticket, job)

    def _submit_partial(self, event: PartialDue) -> None:
        language = self.config.language_code

        def run() -> Transcript:
            return self._engine.transcribe(
                event.audio,
                language=language,
                beam_size=1,
                prompt=self._prompt,
                final=False,
                fitted_window=self.config.fitted_window,
            )

        def done(outcome: Outcome) -> None:
            self._post(self._partial_done, event, outcome)

        def stale() -> bool:  # the final is on its way, or the caller paused: no interim
            ended = self._ended_utterance >= event.utterance
            return ended or self._pause_reported == event.utterance

        self._submit(Job("partial", run, done, stale))

    def _partial_done(self, event: PartialDue, outcome: Outcome) -> None:
        self._job_finished()
        if outcome.error is not None:
            self._report_error(outcome.error)
            return
        if outcome.skipped or self._ended_utterance >= event.utterance:
            return  # the final is on its way; a late interim would only confuse
        text = outcome.result.text
        if text and text != self._last_partial:
            self._last_partial = text
            self._report(self._callbacks.on_partial, text)

    def _submit_final(self, pending: PendingFinal, audio: np.ndarray) -> None:
        config = self.config

        def run() -> Transcript:
            prompt = self._prompt if config.carry_context else None
            context, noisy = final_context(
                self._heard,
                pending.start_ms * 16,
                audio,
                window_s=config.context_window_s if config.carry_context else 0.0,
                noisy_line_db=config.noisy_line_db,
                noisy_window_s=config.noisy_context_window_s,
            )
            return self._engine.transcribe(
                audio,
                language=config.language_code,
                beam_size=config.beam_size,
                prompt=prompt,
                fitted_window=config.fitted_window,
                context=context,
                full_window=noisy,
            )

        def done(outcome: Outcome) -> None:
            # On the worker: if already confirmed, set the context before this call's next
            # decode can start (its jobs run one at a time).
            if pending.finish(outcome):
                self._remember(outcome, pending)
            self._post(self._final_decoded, pending)

        self._submit(Job("final", run, done, stale=lambda: pending.discarded))

    def _remember(self, outcome: Outcome, pending: PendingFinal) -> None:
        """Make a confirmed final's text (and audio) the context of the call's next decode."""
        if outcome.result is not None and outcome.result.text:
            self._prompt = outcome.result.text
            self._heard.said(pending.start_ms * 16, pending.samples, outcome.result.text)

    def _final_decoded(self, pending: PendingFinal) -> None:
        self._job_finished()
        if pending.ended is not None:
            self._deliver(pending)
        elif pending is self._speculation and not pending.discarded:
            self._announce(pending)

    def _announce(self, pending: PendingFinal) -> None:
        """A speculative final decoded before its endpoint: the host's ``on_provisional``
        (optional in the contract) gets its text now."""
        callback = getattr(self._callbacks, "on_provisional", None)
        outcome = pending.outcome
        if callback is None or outcome is None or outcome.error is not None or outcome.skipped:
            return
        if outcome.result is not None and outcome.result.text:
            self._report(callback, outcome.result.text)

    def _deliver(self, pending: PendingFinal) -> None:
        if pending.delivered or pending.discarded or pending.outcome is None:
            return
        pending.delivered = True
        self._last_partial = ""
        outcome = pending.outcome
        if outcome.error is not None:
            self._report_error(outcome.error)
            return
        if outcome.skipped:
            return
        timing = pending.timing()
        self.final_timings.append(timing)
        if timing.text:
            self._report(self._callbacks.on_transcript, timing.text)

    def _job_finished(self) -> None:
        self._outstanding -= 1
        if self._outstanding <= 0:
            self._outstanding = 0
            self._idle.set()

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback`` on the session's loop (from a worker thread, or the loop itself)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(callback, *args)

    def _report_error(self, error: BaseException) -> None:
        if not isinstance(error, ProviderError):
            error = ProviderError(PROVIDER_ID, f"transcription failed: {error}")
        self._report(self._callbacks.on_error, error)

    @staticmethod
    def _report(callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            logger.exception("whisper: a host callback raised")


def _to_float(pcm16: bytes) -> np.ndarray:
    """PCM16 LE bytes → float32 samples in [-1, 1)."""
    return np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0
