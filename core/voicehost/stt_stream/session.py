"""The base class of streaming (WebSocket) STT sessions. See :mod:`voicehost.stt_stream`.

Counted in :mod:`voicehost.metrics` under the session's ``provider_id``: every drop of an open
vendor socket (``voicehost_stt_reconnects_total``) and every failed connect try
(``voicehost_vendor_errors_total`` with ``kind`` ``connect``: retried; ``auth``: credentials
refused; ``refused``: another refusal retrying cannot fix).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Generic, Literal

from voicehost import metrics
from voicehost.contracts import TranscriptionRequest, TranscriptionSession
from voicehost.errors import ProviderAuthError, ProviderConnectionError, ProviderError
from voicehost.stt_stream.connect_errors import retryable
from voicehost.stt_stream.settings import StreamingConfigT

__all__ = ["SessionState", "StreamingTranscriptionSession"]

log = logging.getLogger("voicehost.stt_stream")

SessionState = Literal["new", "connecting", "open", "reconnecting", "failed", "closing", "closed"]


class StreamingTranscriptionSession(TranscriptionSession, Generic[StreamingConfigT]):
    """A :class:`~voicehost.contracts.TranscriptionSession` over one vendor WebSocket, with the
    queueing, keep-alive, reconnect and close logic described in :mod:`voicehost.stt_stream`.

    Args:
        request: the call's request (callbacks, ``input_format``, call SID).
        config: the provider's parsed config; its :class:`StreamingConfig` knobs
            (``reconnect_*``, ``*_timeout_s``, ``keepalive_interval_s``) drive this class, the
            rest is the subclass's. Usually ``request.config``, passed on by the provider.

    Subclasses set :attr:`provider_id` and implement :meth:`_open`, :meth:`_send_audio`,
    :meth:`_receive` and :meth:`_discard_connection`; optionally :meth:`_send_keepalive`,
    :meth:`_finish` and :meth:`_on_closed`. They report results with :meth:`_emit_partial`,
    :meth:`_emit_transcript`, :meth:`_emit_speech_start` and :meth:`_emit_error`, which call
    the host's callbacks and never let a callback's exception break the stream.

    Attributes (read-only, for logs and tests):
        config: the config the session was made with.
        state: ``new`` → ``connecting`` → ``open`` (⇄ ``reconnecting``) → ``closing`` →
            ``closed``; or ``failed`` after giving up.
        sent_bytes: audio bytes the vendor socket accepted.
        dropped_bytes: audio bytes dropped (buffer overflow while down, or after giving up).
        connections: vendor sockets opened so far (1 + successful reconnects).
    """

    provider_id: ClassVar[str] = ""
    #: Largest audio payload of one vendor send, in bytes; a backlog is sent in such pieces.
    max_send_bytes: ClassVar[int] = 3200

    def __init__(self, request: TranscriptionRequest, config: StreamingConfigT) -> None:
        self.request = request
        self.config: StreamingConfigT = config
        self.state: SessionState = "new"
        self.sent_bytes = 0
        self.dropped_bytes = 0
        self.connections = 0
        self._max_buffer = max(request.input_format.bytes_for_ms(config.reconnect_buffer_ms), 1)
        self._pending: deque[bytes] = deque()
        self._pending_bytes = 0
        self._inflight: bytes | None = None
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._last_send = 0.0
        self._runner: asyncio.Task[None] | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._recv_task: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._error_reported = False

    # -- the contract ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the vendor socket is open and accepting audio."""
        return self.state == "open"

    async def connect(self) -> None:
        """Open the vendor stream (up to ``reconnect_attempts`` tries, with backoff) and start
        sending the queued audio.

        Raises:
            ProviderAuthError: the vendor rejected the credentials (first try, no retry).
            ProviderError: the vendor refused the session set-up (not retried).
            ProviderConnectionError: every try failed.
            RuntimeError: called twice.
        """
        if self.state != "new":
            raise RuntimeError(f"{self.provider_id}: connect() called in state {self.state!r}")
        self.state = "connecting"
        try:
            await self._open_with_retry(initial=True)
        except BaseException:
            if self.state == "connecting":
                self._drop_pending()
                self.state = "failed"
            raise
        if self.state != "open":  # close() ran while connecting
            await self._discard_quietly()
            return
        self._start_io()
        self._runner = asyncio.create_task(self._run(), name=f"{self.provider_id}-stt-runner")

    def send_audio(self, audio: bytes) -> None:
        """Queue one chunk of caller audio in ``request.input_format``; never blocks.

        Before ``connect()`` and while reconnecting the chunk waits in the buffer (at most
        ``reconnect_buffer_ms``; the oldest audio is dropped beyond it). After giving up or
        closing, audio is dropped and counted in :attr:`dropped_bytes`.

        Raises:
            TypeError: ``audio`` is not bytes-like (a programming error, not a vendor one).
        """
        if not isinstance(audio, bytes | bytearray | memoryview):
            raise TypeError(f"send_audio() takes bytes, not {type(audio).__name__}")
        if not audio:
            return
        if self.state in ("failed", "closing", "closed"):
            self.dropped_bytes += len(audio)
            return
        self._pending.append(bytes(audio))
        self._pending_bytes += len(audio)
        self._trim_buffer()
        self._drained.clear()
        self._wakeup.set()

    async def close(self) -> None:
        """Send what is queued, run the vendor's close sequence (:meth:`_finish`), close the
        socket. Bounded by ``close_timeout_s``; idempotent (a second call waits for the first).
        """
        if self._close_task is None:
            self._close_task = asyncio.create_task(self._close(), name=f"{self.provider_id}-close")
        await asyncio.shield(self._close_task)

    # -- for subclasses ----------------------------------------------------------------------

    @abc.abstractmethod
    async def _open(self) -> None:
        """Open and set up one vendor socket (upgrade, session config, its acknowledgement).

        Raises:
            ProviderAuthError: HTTP 401/403 at the upgrade (never retried).
            ProviderError: a refusal that retrying cannot fix (never retried).
            Exception: anything else counts as a failed try and is retried.
        """

    @abc.abstractmethod
    async def _send_audio(self, audio: bytes) -> None:
        """Send one piece of audio (≤ :attr:`max_send_bytes`) on the open socket."""

    @abc.abstractmethod
    async def _receive(self) -> None:
        """Read vendor messages until the socket ends; return or raise when it does."""

    @abc.abstractmethod
    async def _discard_connection(self) -> None:
        """Close (or abort) the current socket and forget it. Called after a drop, a failed
        try and at close; bounded by ``close_timeout_s`` and its errors are ignored."""

    async def _send_keepalive(self) -> None:
        """Send the vendor's keep-alive message (only called when ``keepalive_interval_s`` > 0)."""

    async def _finish(self) -> None:
        """The vendor's graceful end of stream, once the queued audio is sent (e.g. Deepgram
        ``Finalize`` + ``CloseStream`` and waiting for its last results). Bounded by
        ``close_timeout_s``."""

    def _on_closed(self) -> None:
        """Called once when the session is closed (e.g. to report a last pending final)."""

    async def _bounded_send(self, send: Awaitable[None], what: str) -> None:
        """Await one vendor send within ``send_timeout_s``.

        Raises:
            ProviderConnectionError: the send did not complete in time.
        """
        try:
            async with asyncio.timeout(self.config.send_timeout_s):
                await send
        except TimeoutError as exc:
            raise ProviderConnectionError(
                self.provider_id, f"{what} send timed out after {self.config.send_timeout_s} s"
            ) from exc

    def _emit_partial(self, text: str) -> None:
        self._call(self.request.callbacks.on_partial, text)

    def _emit_transcript(self, text: str) -> None:
        self._call(self.request.callbacks.on_transcript, text)

    def _emit_speech_start(self) -> None:
        self._call(self.request.callbacks.on_speech_start)

    def _emit_error(self, exc: Exception) -> None:
        """Report a non-fatal vendor error (the stream goes on)."""
        self._call(self.request.callbacks.on_error, exc)

    # -- internals -------------------------------------------------------------------------

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("%s STT callback %r raised", self.provider_id, callback)

    def _trim_buffer(self) -> None:
        while self._pending_bytes > self._max_buffer and len(self._pending) > 1:
            old = self._pending.popleft()
            self._pending_bytes -= len(old)
            if not self.dropped_bytes:
                log.warning(
                    "%s STT: more than %d ms of audio queued (call %s); dropping the oldest",
                    self.provider_id,
                    self.config.reconnect_buffer_ms,
                    self.request.call_sid or "?",
                )
            self.dropped_bytes += len(old)

    def _drop_pending(self) -> None:
        self.dropped_bytes += self._pending_bytes + len(self._inflight or b"")
        self._pending.clear()
        self._pending_bytes = 0
        self._inflight = None
        self._drained.set()

    def _take_batch(self) -> bytes:
        parts: list[bytes] = []
        size = 0
        while self._pending and size + len(self._pending[0]) <= self.max_send_bytes:
            chunk = self._pending.popleft()
            parts.append(chunk)
            size += len(chunk)
        if not parts:  # one chunk larger than max_send_bytes: split it
            chunk = self._pending.popleft()
            parts.append(chunk[: self.max_send_bytes])
            self._pending.appendleft(chunk[self.max_send_bytes :])
            size = self.max_send_bytes
        self._pending_bytes -= size
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _open_with_retry(self, *, initial: bool) -> None:
        attempts = max(self.config.reconnect_attempts, 1 if initial else 0)
        last: BaseException | None = None
        for attempt in range(1, attempts + 1):
            delay_index = attempt - 1 if initial else attempt
            if delay_index:
                await asyncio.sleep(self.config.backoff_s(delay_index))
            if self.state not in ("connecting", "reconnecting"):
                return  # closed meanwhile
            try:
                async with asyncio.timeout(self.config.connect_timeout_s):
                    await self._open()
            except Exception as exc:
                await self._discard_quietly()
                if not retryable(exc):
                    kind = "auth" if isinstance(exc, ProviderAuthError) else "refused"
                    metrics.count_vendor_error(self.provider_id, kind)
                    raise
                metrics.count_vendor_error(self.provider_id, "connect")
                last = exc
                log.warning(
                    "%s STT: connect try %d/%d failed: %s", self.provider_id, attempt, attempts, exc
                )
                continue
            if self.state not in ("connecting", "reconnecting"):
                await self._discard_quietly()
                return
            self.connections += 1
            self.state = "open"
            self._last_send = asyncio.get_running_loop().time()
            return
        if last is None:
            reason = "reconnecting is off (reconnect_attempts = 0)"
        elif isinstance(last, TimeoutError):
            reason = "connect timed out"
        else:
            reason = str(last) or type(last).__name__
        raise ProviderConnectionError(
            self.provider_id, f"could not connect after {attempts} tries: {reason}"
        ) from last

    def _start_io(self) -> None:
        """Start the pump and the receiver of the socket just opened."""
        self._pump_task = asyncio.create_task(self._pump(), name=f"{self.provider_id}-stt-pump")
        self._recv_task = asyncio.create_task(self._receive(), name=f"{self.provider_id}-stt-recv")

    async def _run(self) -> None:
        """Serve the open socket; on a drop, reconnect or give up."""
        while True:
            cause = await self._await_io()
            if cause is None:
                return
            log.warning(
                "%s STT socket dropped (call %s): %s; reconnecting",
                self.provider_id,
                self.request.call_sid or "?",
                cause,
            )
            self.state = "reconnecting"
            metrics.count_stt_reconnect(self.provider_id)
            if self._inflight is not None:  # its send failed: send it again first
                self._pending.appendleft(self._inflight)
                self._pending_bytes += len(self._inflight)
                self._inflight = None
                self._trim_buffer()
            await self._discard_quietly()
            try:
                await self._open_with_retry(initial=False)
            except ProviderError as exc:
                self._give_up(exc)
                return
            if self.state != "open":
                return
            self._start_io()

    async def _await_io(self) -> BaseException | None:
        """Wait until the pump or the receiver ends; the drop's cause, or None when closing."""
        pump, recv = self._pump_task, self._recv_task
        assert pump is not None and recv is not None
        await asyncio.wait((pump, recv), return_when=asyncio.FIRST_COMPLETED)
        if self.state != "open":  # close() owns the tasks now
            return None
        for task in (pump, recv):
            task.cancel()
        results = await asyncio.gather(pump, recv, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                return result
        return ProviderConnectionError(self.provider_id, "the vendor closed the stream")

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        keepalive = self.config.keepalive_interval_s or None  # 0: no keep-alive
        while True:
            if not self._pending:
                self._drained.set()
                self._wakeup.clear()
                timeout = None if keepalive is None else self._last_send + keepalive - loop.time()
                try:
                    async with asyncio.timeout(timeout):
                        await self._wakeup.wait()
                except TimeoutError:
                    await self._bounded_send(self._send_keepalive(), "keep-alive")
                    self._last_send = loop.time()
                continue
            batch = self._take_batch()
            self._inflight = batch
            await self._bounded_send(self._send_audio(batch), "audio")
            self._inflight = None
            self.sent_bytes += len(batch)
            self._last_send = loop.time()

    def _give_up(self, exc: ProviderError) -> None:
        self.state = "failed"
        self._drop_pending()
        log.error("%s STT gave up (call %s): %s", self.provider_id, self.request.call_sid, exc)
        if not self._error_reported:
            self._error_reported = True
            self._call(self.request.callbacks.on_error, exc)

    async def _discard_quietly(self) -> None:
        try:
            async with asyncio.timeout(self.config.close_timeout_s):
                await self._discard_connection()
        except Exception as exc:  # the socket is going away either way
            log.debug("%s STT: discarding the socket failed: %s", self.provider_id, exc)

    async def _close(self) -> None:
        was = self.state
        self.state = "closing"
        try:
            if was == "open":
                try:
                    async with asyncio.timeout(self.config.close_timeout_s):
                        await self._wait_drained()
                        await self._cancel(self._pump_task)
                        await self._finish()
                except Exception as exc:
                    log.warning("%s STT: close sequence incomplete: %s", self.provider_id, exc)
        finally:
            for task in (self._pump_task, self._recv_task, self._runner):
                await self._cancel(task)
            await self._discard_quietly()
            self._drop_pending()
            self.state = "closed"
            self._on_closed()

    async def _wait_drained(self) -> None:
        """Wait until the queued audio is sent or the pump stops (a drop while closing)."""
        pump = self._pump_task
        while not self._drained.is_set() and pump is not None and not pump.done():
            waiter = asyncio.ensure_future(self._drained.wait())
            await asyncio.wait((waiter, pump), return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()

    async def _wait_receiver(self, until: asyncio.Event | None = None) -> None:
        """Wait until the receiver ends (the vendor closed the socket) or, when given, ``until``
        is set; for :meth:`_finish`."""
        recv = self._recv_task
        if recv is None or recv.done():
            return
        if until is None:
            await asyncio.wait((recv,))
            return
        waiter = asyncio.ensure_future(until.wait())
        try:
            await asyncio.wait((recv, waiter), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()

    @staticmethod
    async def _cancel(task: asyncio.Task[Any] | None) -> None:
        if task is None or task is asyncio.current_task():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
