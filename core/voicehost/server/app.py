"""The aiohttp application of ``voicehost serve`` and the state it shares between requests.

Routes (paths from :class:`~voicehost.server.settings.ServerSettings`):

========================  =====================================================================
``POST webhook_path``     Twilio voice webhook → TwiML ``<Connect><Stream>`` (signed)
``POST status_path``      Twilio call status callback (signed) → 204
``GET stream_path``       Twilio Media Streams WebSocket
``GET /healthz``          ``{"status": "ok", "active_calls": n, …}``; 503 while draining
========================  =====================================================================
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

import attrs
from aiohttp import web

from voicehost.server.call import Call
from voicehost.server.handler import CallHandler, default_handler
from voicehost.server.limits import PendingLimiter
from voicehost.server.media_stream import MediaStream, handle_media_stream
from voicehost.server.settings import ServerSettings
from voicehost.server.tokens import StreamTokens
from voicehost.server.webhook import (
    TERMINAL_STATUSES,
    handle_status_callback,
    handle_voice_webhook,
)

log = logging.getLogger(__name__)

__all__ = ["SERVER_KEY", "CallRecord", "CallServer", "ProviderBinding", "build_app"]

_RECORD_TTL_S = 3600.0
_END_TIMEOUT_S = 15.0


class ProviderBinding(Protocol):
    """A provider with its resolved config blob (``voicehost.config.ProviderChoice`` fits)."""

    @property
    def provider(self) -> Any:
        """The :class:`~voicehost.contracts.TranscriptionProvider` or
        :class:`~voicehost.contracts.SpeechProvider`."""
        ...

    @property
    def config(self) -> Mapping[str, Any]:
        """Its resolved config blob, handed to every session / synthesis."""
        ...


@attrs.frozen
class Binding:
    """A plain :class:`ProviderBinding` for tests and embedding."""

    provider: Any
    config: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.define
class CallRecord:
    """What the voice webhook told us about a call (before and while it streams)."""

    call_sid: str
    account_sid: str = ""
    from_: str = ""
    to: str = ""
    direction: str = ""
    status: str = ""
    created: float = attrs.field(factory=time.monotonic)


class CallServer:
    """Shared state of one server: settings, providers, tokens, limits, live calls.

    Attributes:
        calls: live calls by call SID.
        records: webhook data by call SID (dropped when the call ends or after an hour).
        sockets: every open Media Streams socket (pending and live).
        draining: True once :meth:`drain` began; new calls are refused.
        ended_calls: how many calls have ended (for health and tests).
    """

    def __init__(
        self,
        settings: ServerSettings,
        *,
        stt: ProviderBinding | None = None,
        tts: ProviderBinding | None = None,
        handler: CallHandler | None = None,
    ) -> None:
        self.settings = settings
        self.stt = stt
        self.tts = tts
        if handler is None:
            handler = default_handler(settings.greeting)
        self.handler = handler
        self.tokens = StreamTokens(settings.token_ttl_s)
        self.pending = PendingLimiter(
            settings.max_pending_connections, settings.max_pending_connections_per_ip
        )
        self.sockets: set[MediaStream] = set()
        self.calls: dict[str, Call] = {}
        self._streams: dict[str, MediaStream] = {}
        self.records: dict[str, CallRecord] = {}
        self.draining = False
        self.ended_calls = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # --- calls -----------------------------------------------------------------------------

    def remember_call(self, form: Mapping[str, Any]) -> CallRecord:
        """Store the voice webhook's parameters of a call."""
        now = time.monotonic()
        for sid in [s for s, r in self.records.items() if now - r.created > _RECORD_TTL_S]:
            if sid not in self.calls:
                del self.records[sid]
        record = CallRecord(
            call_sid=str(form.get("CallSid", "")),
            account_sid=str(form.get("AccountSid", "")),
            from_=str(form.get("From", "")),
            to=str(form.get("To", "")),
            direction=str(form.get("Direction", "")),
            status=str(form.get("CallStatus", "")),
        )
        self.records[record.call_sid] = record
        return record

    def add_call(self, call: Call, stream: MediaStream) -> None:
        """A stream started: ``call`` is live."""
        self.calls[call.call_sid] = call
        self._streams[call.call_sid] = stream
        self._idle.clear()

    async def end_call(self, call: Call, reason: str) -> None:
        """End ``call`` (exactly once) and forget it."""
        await call.end(reason)
        if self.calls.get(call.call_sid) is call:
            del self.calls[call.call_sid]
            self._streams.pop(call.call_sid, None)
            self.records.pop(call.call_sid, None)
            self.ended_calls += 1
        if not self.calls:
            self._idle.set()

    def update_status(self, call_sid: str, status: str) -> None:
        """A status callback: record ``status``; a terminal one ends a live call and revokes
        an unused stream token."""
        record = self.records.get(call_sid)
        if record is not None:
            record.status = status
        call = self.calls.get(call_sid)
        if call is not None:
            call.status = status
        log.info("call %s: status %s", call_sid, status)
        if status in TERMINAL_STATUSES:
            self.tokens.revoke(call_sid)
            stream = self._streams.get(call_sid)
            if stream is not None:
                stream.request_close(1000, "Call ended", reason=f"status:{status}")
            elif call is None:
                self.records.pop(call_sid, None)

    # --- health and shutdown ---------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The ``/healthz`` body."""
        return {
            "status": "draining" if self.draining else "ok",
            "active_calls": len(self.calls),
            "pending_streams": len(self.pending),
            "sockets": len(self.sockets),
            "ended_calls": self.ended_calls,
        }

    async def drain(
        self, grace_s: float | None = None, *, force: asyncio.Event | None = None
    ) -> None:
        """Stop accepting calls; let live calls go on for ``grace_s`` seconds (default
        ``shutdown_grace_s``) or until ``force`` is set, then end the rest (reason
        ``"shutdown"``, close 1001)."""
        grace = self.settings.shutdown_grace_s if grace_s is None else grace_s
        self.draining = True
        for stream in list(self.sockets):
            if stream.call is None:
                stream.request_close(1001, "Server is shutting down")
        if self.calls:
            log.info("draining: %d active calls, up to %.1f s", len(self.calls), grace)
            waits = [asyncio.ensure_future(self._idle.wait())]
            if force is not None:
                waits.append(asyncio.ensure_future(force.wait()))
            done, pending = await asyncio.wait(
                waits, timeout=grace, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()
            if self.calls:
                why = "stop requested again" if done else "grace period over"
                log.warning("%s; ending %d calls", why, len(self.calls))
        await self.close_all()

    async def close_all(self) -> None:
        """End every call now (reason ``"shutdown"``) and close every socket (1001)."""
        self.draining = True
        for stream in list(self.sockets):
            stream.request_close(1001, "Server is shutting down", reason="shutdown")
        calls = list(self.calls.values())
        if calls:
            await asyncio.wait(
                [asyncio.ensure_future(c.wait_ended()) for c in calls], timeout=_END_TIMEOUT_S
            )


SERVER_KEY = web.AppKey("voicehost_call_server", CallServer)


async def handle_healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: 200 with the live call count; 503 while draining."""
    server = request.app[SERVER_KEY]
    return web.json_response(server.health(), status=503 if server.draining else 200)


def build_app(
    settings: ServerSettings | None = None,
    *,
    stt: ProviderBinding | None = None,
    tts: ProviderBinding | None = None,
    handler: CallHandler | None = None,
) -> web.Application:
    """The aiohttp application answering Twilio.

    Args:
        settings: server settings (default: all defaults, no auth token).
        stt: the STT provider and config blob (None: calls run without transcription).
        tts: the TTS provider and config blob (None: ``call.say`` raises PlaybackError).
        handler: the app's :class:`CallHandler` (default: greets with ``[server] greeting``
            when set, else does nothing).

    The :class:`CallServer` is at ``app[SERVER_KEY]``. On aiohttp shutdown every call ends
    (reason ``"shutdown"``).
    """
    settings = settings or ServerSettings()
    server = CallServer(settings, stt=stt, tts=tts, handler=handler)
    if settings.skip_signature_verification:
        log.warning(
            "skip_signature_verification = true: Twilio webhook signatures are NOT checked; "
            "for local development only"
        )
    app = web.Application()
    app[SERVER_KEY] = server
    app.router.add_post(settings.webhook_path, handle_voice_webhook)
    app.router.add_post(settings.status_path, handle_status_callback)
    app.router.add_get(settings.stream_path, handle_media_stream)
    app.router.add_get("/healthz", handle_healthz)

    async def on_shutdown(_app: web.Application) -> None:
        await server.close_all()

    app.on_shutdown.append(on_shutdown)
    return app
