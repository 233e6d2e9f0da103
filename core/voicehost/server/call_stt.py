"""One call's speech-to-text session: opened in the background, fed the caller's frames
(converted once, with state, when the provider does not take μ-law 8 kHz), closed with a
bound while the vendor flushes the caller's last words.

:class:`CallTranscription` is owned by :class:`voicehost.server.call.Call`; it hands every
STT callback to the call on the event loop thread, even when a plugin calls it from a worker
thread (the contract says it must not, but a plugin that gets it wrong must not corrupt the
call).

Counted in :mod:`voicehost.metrics` (``voicehost_vendor_errors_total`` under the provider's
id): a session the provider could not make (``session``), one that never connected
(``unavailable``), an error the session reported (``reported``) and a ``send_audio`` that
raised (``send``); ``voicehost_stt_final_latency_seconds`` (end of speech → final) for
every final that followed a speech end (the optional ``on_speech_end`` callback; providers
that never report one are not timed).

Each final's timing (:class:`FinalTiming`: when it came, when the caller's speech before it
ended) is kept for the call handler, which takes it with :meth:`CallTranscription.take_final`
to time the turn it answers.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from voicehost import metrics
from voicehost.audio import AudioConverter
from voicehost.config_model import ProviderConfig, default_config
from voicehost.contracts import (
    MULAW_8K,
    AudioFormat,
    TranscriptionCallbacks,
    TranscriptionProvider,
    TranscriptionRequest,
    TranscriptionSession,
)
from voicehost.server.turn_taking import TurnTaker

log = logging.getLogger(__name__)

__all__ = ["CallTranscription", "FinalTiming", "choose_input_format"]

#: Finals whose timing waits for the handler (one not taken is dropped after this many).
_KEPT_FINALS = 16


@attrs.frozen
class FinalTiming:
    """When a final transcript reached the call, and when the caller's speech before it
    ended.

    Attributes:
        text: the final transcript, as the provider gave it.
        final_at: when it reached the call, ``time.monotonic()`` s.
        speech_end_at: when the caller stopped speaking (the provider's ``on_speech_end``,
            moved back by the silence it reported), ``time.monotonic()`` s; None when the
            provider reported no speech end before this final.
    """

    text: str
    final_at: float
    speech_end_at: float | None = None


def choose_input_format(provider: TranscriptionProvider) -> AudioFormat:
    """The format to feed ``provider``: μ-law 8 kHz when it takes it (pass-through), else
    its preferred (first) input format."""
    formats = tuple(getattr(provider, "input_formats", ()) or (MULAW_8K,))
    return MULAW_8K if MULAW_8K in formats else formats[0]


class CallTranscription:
    """The STT session of one call.

    Args:
        call_sid / stream_sid: the call's Twilio ids (handed to the provider).
        provider / config: the STT provider and its parsed config.
        callbacks: what the call does with a partial, a final, a speech start (each called
            on the event loop thread).
        close_timeout_s: bound on closing the session, s.
        turn: the end-of-turn detector binding (``provider``, ``config``), or None.
        on_provisional: told the caller's turn as it stands before it is final (the STT's
            early final, finals the turn detector is deciding) and None when it is
            withdrawn; None: provisional transcripts are not passed on.

    Attributes:
        session: the provider's session, or None until :meth:`open` (or when it failed).
        connected: True once the session connected.
        failed: True once creating, connecting or feeding it failed (no more audio is sent).
        draining: True while :meth:`close` waits for the vendor's last finals.
        input_format: the format fed to the session.
    """

    def __init__(
        self,
        call_sid: str,
        stream_sid: str,
        provider: TranscriptionProvider,
        config: ProviderConfig | None,
        *,
        on_partial: Callable[[str], None],
        on_transcript: Callable[[str], None],
        on_speech_start: Callable[[], None],
        close_timeout_s: float = 5.0,
        turn: Any = None,
        on_provisional: Callable[[str | None], None] | None = None,
    ) -> None:
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self.provider = provider
        self.config = config if config is not None else default_config(provider)
        self.session: TranscriptionSession | None = None
        self.connected = False
        self.failed = False
        self.draining = False
        self.input_format = choose_input_format(provider)
        self._converter = (
            AudioConverter(MULAW_8K, self.input_format) if self.input_format != MULAW_8K else None
        )
        self._on_partial = on_partial
        self._on_transcript = on_transcript
        self._on_speech_start = on_speech_start
        self._on_provisional = on_provisional
        self._announced: str | None = None  # without a turn taker: the provisional text
        self._close_timeout_s = close_timeout_s
        self._connect_task: asyncio.Task[None] | None = None
        self._speech_end_at: float | None = None
        self._finals: collections.deque[FinalTiming] = collections.deque(maxlen=_KEPT_FINALS)
        #: holds finals until the turn is complete (``turn``: a detector binding), or None
        self.turns = (
            TurnTaker(
                call_sid,
                turn.provider,
                turn.config,
                self._turn_ended,
                provisional=on_provisional,
            )
            if turn is not None
            else None
        )

    def open(self) -> None:
        """Create the session and connect it in the background (a failure is logged; the
        call goes on without transcription)."""
        callbacks = TranscriptionCallbacks(
            on_partial=self._on_loop(self._on_partial),
            on_transcript=self._on_loop(self._final),
            on_speech_start=self._on_loop(self._speech_started),
            on_error=self._on_loop(self._error),
            on_speech_end=self._on_loop(self._speech_ended),
            on_provisional=self._on_loop(self._provisional),
        )
        request = TranscriptionRequest(
            config=self.config,
            callbacks=callbacks,
            input_format=self.input_format,
            call_sid=self.call_sid,
            stream_sid=self.stream_sid,
        )
        try:
            self.session = self.provider.create_session(request)
        except Exception as exc:
            self.failed = True
            metrics.count_vendor_error(self.provider, "session")
            log.warning(
                "call %s: STT session not created (%s); TTS still works", self.call_sid, exc
            )
            return
        self._connect_task = asyncio.get_running_loop().create_task(self._connect())

    def feed(self, ulaw: bytes) -> None:
        """One inbound μ-law frame → the session (converted when needed)."""
        if self.turns is not None:
            self.turns.feed(ulaw)
        if self.session is None or self.failed:
            return
        audio = self._converter.convert(ulaw) if self._converter else ulaw
        if not audio:
            return
        try:
            self.session.send_audio(audio)
        except Exception as exc:  # the contract says never raise; a plugin bug must not kill us
            self.failed = True
            metrics.count_vendor_error(self.provider, "send")
            log.warning(
                "call %s: STT send_audio raised %r; transcription stopped", self.call_sid, exc
            )

    async def close(self) -> None:
        """Stop connecting, then close the session within ``close_timeout_s``; finals the
        vendor flushes meanwhile still reach the call (:attr:`draining` is True)."""
        if self._connect_task is not None and not self._connect_task.done():
            self._connect_task.cancel()
        if self.session is None:
            if self.turns is not None:
                await self.turns.aclose()
            return
        self.draining = True
        try:
            await asyncio.wait_for(self.session.close(), self._close_timeout_s)
        except (TimeoutError, Exception) as exc:
            log.warning("call %s: closing STT: %r", self.call_sid, exc)
        finally:
            if self.turns is not None:  # held finals are the caller's last words
                await self.turns.aclose()
            self.draining = False

    def take_final(self, text: str) -> FinalTiming | None:
        """The timing of the final ``text`` handed to the handler (oldest first; finals
        before it that no one took are dropped), or None when there is none (a final not
        from this session: the ``<Gather>`` fallback's)."""
        while self._finals:
            timing = self._finals.popleft()
            if timing.text == text:
                return timing
        return None

    def _speech_ended(self, silence_s: object = 0.0) -> None:
        """The provider's ``on_speech_end``: the caller stopped speaking ``silence_s`` ago."""
        try:
            ago = max(0.0, float(silence_s))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            ago = 0.0
        self._speech_end_at = time.monotonic() - ago
        if self.turns is not None:
            self.turns.speech_ended(self._speech_end_at)

    def _final(self, text: str) -> None:
        """A final: note when it came (and the speech end before it), then hand it on."""
        now = time.monotonic()
        speech_end, self._speech_end_at = self._speech_end_at, None
        if speech_end is not None and speech_end <= now:
            metrics.observe_stt_final_latency(self.provider, now - speech_end)
        else:
            speech_end = None
        if self.turns is not None:
            self.turns.final(text, speech_end)
            return
        self._announced = None  # committed (or replaced) by this final
        self._finals.append(FinalTiming(text, now, speech_end))
        self._on_transcript(text)

    def _turn_ended(self, text: str, speech_end_at: float | None) -> None:
        """The turn detector released the caller's turn: its finals, joined."""
        self._finals.append(FinalTiming(text, time.monotonic(), speech_end_at))
        self._on_transcript(text)

    def _speech_started(self) -> None:
        if self.turns is not None:
            self.turns.speech_started()
        elif self._announced is not None and self._on_provisional is not None:
            self._announced = None
            self._on_provisional(None)  # withdrawn: the caller went on
        self._on_speech_start()

    def _provisional(self, text: str) -> None:
        """The provider's ``on_provisional``: announced (through the turn taker, which joins
        it to the finals it holds), when the call wants provisional transcripts."""
        if self._on_provisional is None or not isinstance(text, str) or not text.strip():
            return
        if self.turns is not None:
            self.turns.provisional(text)
        elif text.strip() != self._announced:
            self._announced = text.strip()
            self._on_provisional(self._announced)

    async def _connect(self) -> None:
        assert self.session is not None
        try:
            await self.session.connect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed = True
            metrics.count_vendor_error(self.provider, "unavailable")
            log.warning("call %s: STT connection failed (TTS still works): %s", self.call_sid, exc)
        else:
            self.connected = True

    def _error(self, exc: Exception) -> None:
        metrics.count_vendor_error(self.provider, "reported")
        log.warning("call %s: STT error: %s", self.call_sid, exc)

    def _on_loop(self, fn: Callable[..., None]) -> Callable[..., None]:
        """``fn`` made safe to call from a plugin's worker thread: such calls are handed
        over to the event loop."""
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()

        def call(*args: Any) -> None:
            if threading.get_ident() == loop_thread:
                fn(*args)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(fn, *args)

        return call
