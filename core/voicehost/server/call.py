"""The per-call session: one Twilio call's stream, STT session, playback and app callbacks.

A :class:`Call` is made by the Media Streams handler when a ``start`` is accepted. It

* opens an STT session from the configured provider with its config blob (in the background:
  if it fails to connect the call stays up and playback still works, as in the seed);
* forwards each inbound 20 ms ``media`` frame: μ-law bytes pass through untouched when the
  provider's ``input_formats`` accept μ-law 8 kHz, otherwise they are converted to the
  provider's first input format by one stateful :class:`voicehost.audio.AudioConverter` (the
  resampler state spans frames);
* turns STT callbacks and ``dtmf`` into :class:`~voicehost.server.handler.CallHandler` calls
  (each in its own task, exceptions logged), doing barge-in first on speech start;
* ends exactly once (:meth:`Call.end`): playback cancelled, STT closed, handler tasks
  cancelled, then ``on_call_end``.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import threading
import time
from collections.abc import AsyncIterable, Callable, Mapping
from typing import Any

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
from voicehost.server.handler import CallHandler
from voicehost.server.playback import Playback, Reply

log = logging.getLogger(__name__)

__all__ = ["Call", "choose_input_format"]

_HANDLER_END_TIMEOUT_S = 10.0


def choose_input_format(provider: TranscriptionProvider) -> AudioFormat:
    """The format to feed ``provider``: μ-law 8 kHz when it takes it (pass-through), else
    its preferred (first) input format."""
    formats = tuple(getattr(provider, "input_formats", ()) or (MULAW_8K,))
    return MULAW_8K if MULAW_8K in formats else formats[0]


class Call:
    """One live call (one Media Streams socket after its ``start``).

    Attributes:
        call_sid / stream_sid / account_sid: Twilio ids (``CA…`` / ``MZ…`` / ``AC…``).
        from_ / to / direction: from the voice webhook (empty when unknown).
        custom_parameters: ``start.customParameters`` minus the stream token.
        status: the last ``CallStatus`` Twilio reported (``in-progress`` once streaming).
        state: a free dict for the application.
        started_at: wall-clock start time (``time.time()``).
        stt: the STT session, or None when none is configured or it could not be made.
        stt_connected: True once the STT session connected.
        input_format: the format fed to the STT session.
        malformed: counts of malformed inbound messages by kind (json, base64, …).
        frames_in: inbound media frames received.
        end_reason: why it ended (see ``CallHandler.on_call_end``), None while live.
    """

    def __init__(
        self,
        *,
        call_sid: str,
        stream_sid: str,
        playback: Playback,
        handler: CallHandler,
        request_close: Callable[[int, str], None],
        account_sid: str = "",
        from_: str = "",
        to: str = "",
        direction: str = "",
        custom_parameters: Mapping[str, str] | None = None,
        stt_provider: TranscriptionProvider | None = None,
        stt_config: ProviderConfig | None = None,
        barge_in: bool = True,
        stt_close_timeout_s: float = 5.0,
    ) -> None:
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self.account_sid = account_sid
        self.from_ = from_
        self.to = to
        self.direction = direction
        self.custom_parameters = dict(custom_parameters or {})
        self.status = "in-progress"
        self.state: dict[str, Any] = {}
        self.started_at = time.time()
        self.playback = playback
        self.handler = handler
        self.barge_in_enabled = barge_in
        self.malformed: collections.Counter[str] = collections.Counter()
        self.frames_in = 0
        self.end_reason: str | None = None
        self._request_close = request_close
        self._stt_provider = stt_provider
        self._stt_config = stt_config if stt_config is not None else default_config(stt_provider)
        self._stt_close_timeout_s = stt_close_timeout_s
        self.stt: TranscriptionSession | None = None
        self.stt_connected = False
        self._stt_failed = False
        self._stt_task: asyncio.Task[None] | None = None
        self.input_format = choose_input_format(stt_provider) if stt_provider else MULAW_8K
        self._converter = (
            AudioConverter(MULAW_8K, self.input_format) if self.input_format != MULAW_8K else None
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._ended = asyncio.Event()
        self._ending = False
        # While STT closes, the vendor may flush the caller's last words (Deepgram's
        # Finalize, OpenAI's commit); those finals still reach the handler.
        self._draining_stt = False
        self._late_tasks: set[asyncio.Task[None]] = set()

    # --- what the application uses ---------------------------------------------------------

    def say(self, text: str | AsyncIterable[str]) -> Reply:
        """Queue a reply; ``await`` the returned :class:`Reply` to wait until it has played.

        Raises:
            PlaybackQueueFull: too many replies queued (``max_queued_replies``).
            PlaybackError: no TTS provider, or the call has ended.
        """
        return self.playback.say(text)

    def clear(self) -> bool:
        """Barge in by hand: stop and drop all playback, send ``clear``."""
        return self.playback.barge_in()

    async def hangup(self, reason: str = "hangup") -> None:
        """End the call from our side: the stream socket is closed (Twilio then runs the
        TwiML after ``<Connect>``, which is none, so the call ends). Returns at once;
        ``on_call_end`` follows with ``reason`` (the first reason given wins)."""
        if self.end_reason is None and not self._ending:
            self.end_reason = reason
        self._request_close(1000, "hangup")

    @property
    def ended(self) -> bool:
        """True once :meth:`end` has finished."""
        return self._ended.is_set()

    async def wait_ended(self) -> str:
        """Wait until the call has ended; returns the reason."""
        await self._ended.wait()
        return self.end_reason or "closed"

    # --- driven by the stream handler ------------------------------------------------------

    def start(self) -> None:
        """Open the STT session in the background and tell the app the call started."""
        if self._stt_provider is not None:
            callbacks = TranscriptionCallbacks(
                on_partial=self._on_loop(lambda text: self._dispatch("on_partial", text)),
                on_transcript=self._on_loop(lambda text: self._dispatch("on_transcript", text)),
                on_speech_start=self._on_loop(self._speech_started),
                on_error=self._on_loop(self._stt_error),
            )
            request = TranscriptionRequest(
                config=self._stt_config,
                callbacks=callbacks,
                input_format=self.input_format,
                call_sid=self.call_sid,
                stream_sid=self.stream_sid,
            )
            try:
                self.stt = self._stt_provider.create_session(request)
            except Exception as exc:
                self._stt_failed = True
                log.warning("call %s: STT session not created (%s); TTS still works", self, exc)
            else:
                self._stt_task = asyncio.get_running_loop().create_task(self._connect_stt())
        self._dispatch("on_call_start")

    def feed_audio(self, ulaw: bytes) -> None:
        """One inbound μ-law frame from Twilio → the STT session (converted if needed)."""
        self.frames_in += 1
        if self.stt is None or self._stt_failed:
            return
        audio = self._converter.convert(ulaw) if self._converter else ulaw
        if not audio:
            return
        try:
            self.stt.send_audio(audio)
        except Exception as exc:  # the contract says never raise; a plugin bug must not kill us
            self._stt_failed = True
            log.warning("call %s: STT send_audio raised %r; transcription stopped", self, exc)

    def dtmf(self, digit: str) -> None:
        """A key press from the caller."""
        self._dispatch("on_dtmf", digit)

    def mark(self, name: str) -> None:
        """Twilio echoed a mark."""
        if not self.playback.on_mark(name):
            log.debug("call %s: mark %r not ours or already settled", self, name)

    async def end(self, reason: str) -> None:
        """End the call exactly once; later calls wait for the first to finish."""
        if self._ending:
            await self._ended.wait()
            return
        self._ending = True
        if self.end_reason is None:
            self.end_reason = reason
        try:
            await self.playback.close()
            if self._stt_task is not None and not self._stt_task.done():
                self._stt_task.cancel()
            if self.stt is not None:
                self._draining_stt = True
                try:
                    await asyncio.wait_for(self.stt.close(), self._stt_close_timeout_s)
                except (TimeoutError, Exception) as exc:
                    log.warning("call %s: closing STT: %r", self, exc)
                finally:
                    self._draining_stt = False
            if self._late_tasks:  # let the flushed finals be handled (recorded), bounded
                await asyncio.wait(self._late_tasks, timeout=_HANDLER_END_TIMEOUT_S)
            tasks = [t for t in self._tasks if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
            if self.malformed:
                log.warning("call %s: malformed messages: %s", self, dict(self.malformed))
            await self._call_handler(
                "on_call_end", self.end_reason or reason, limit_s=_HANDLER_END_TIMEOUT_S
            )
        finally:
            self._ended.set()

    # --- internals -------------------------------------------------------------------------

    async def _connect_stt(self) -> None:
        assert self.stt is not None
        try:
            await self.stt.connect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._stt_failed = True
            log.warning("call %s: STT connection failed (TTS still works): %s", self, exc)
        else:
            self.stt_connected = True

    def _on_loop(self, fn: Callable[..., None]) -> Callable[..., None]:
        """``fn`` made safe to call from a plugin's worker thread: the contract says STT
        callbacks run on the event loop thread, but a plugin that gets it wrong must not
        corrupt the call, so such calls are handed over to the loop."""
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()

        def call(*args: Any) -> None:
            if threading.get_ident() == loop_thread:
                fn(*args)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(fn, *args)

        return call

    def _speech_started(self) -> None:
        if self.barge_in_enabled and not self._ending:
            self.playback.barge_in()
        self._dispatch("on_speech_start")

    def _stt_error(self, exc: Exception) -> None:
        log.warning("call %s: STT error: %s", self, exc)

    def _dispatch(self, name: str, *args: Any) -> None:
        late = self._ending and self._draining_stt and name == "on_transcript"
        if self._ending and not late:
            return
        task = asyncio.get_running_loop().create_task(self._call_handler(name, *args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if late:
            self._late_tasks.add(task)
            task.add_done_callback(self._late_tasks.discard)

    async def _call_handler(self, name: str, *args: Any, limit_s: float | None = None) -> None:
        method = getattr(self.handler, name, None)
        if method is None:
            return
        try:
            result = method(self, *args)
            if inspect.isawaitable(result):
                await asyncio.wait_for(result, limit_s) if limit_s else await result
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call %s: handler %s failed; the call goes on", self, name)

    def __str__(self) -> str:
        return self.call_sid

    def __repr__(self) -> str:
        return f"<Call {self.call_sid} stream={self.stream_sid} ended={self.ended}>"
