"""The state one call server shares between its requests: settings, providers, limits, the
live calls of this instance, and the :class:`~voicehost.server.live_state.LiveCallState`
(stream tokens, the webhook's call data, the live-call registry) that may be shared with
other instances. Every request handler of the transport reaches it as
``request.app[SERVER_KEY]``.

This module sits at the bottom of :mod:`voicehost.server`: the webhook and Media Streams
handlers import it, it imports neither of them (a socket is seen through the small
:class:`StreamSocket` protocol).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from typing import Any, Protocol

import attrs
from aiohttp import web

from voicehost.config_model import ProviderConfig
from voicehost.server.call import Call
from voicehost.server.handler import CallHandler, default_handler
from voicehost.server.limits import PendingLimiter
from voicehost.server.live_state import CallRecord, LiveCallState, MemoryLiveState
from voicehost.server.protocol import sanitize_log_text
from voicehost.server.settings import ServerSettings, TwilioSettings

log = logging.getLogger(__name__)

__all__ = [
    "SERVER_KEY",
    "TERMINAL_STATUSES",
    "Binding",
    "CallRecord",
    "CallServer",
    "LiveCallState",
    "MemoryLiveState",
    "ProviderBinding",
    "StreamSocket",
]

_END_TIMEOUT_S = 15.0

#: ``CallStatus`` values after which a call is over.
TERMINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


class StreamSocket(Protocol):
    """What the server state needs of a Media Streams socket
    (:class:`voicehost.server.media_stream.StreamSocket`)."""

    @property
    def call(self) -> Call | None:
        """The call once its ``start`` was accepted."""
        ...

    def request_close(self, code: int, message: str, *, reason: str | None = None) -> None:
        """Close the socket from any task; the read loop then ends the call."""
        ...


class ProviderBinding(Protocol):
    """A provider with its parsed config (``voicehost.config.ProviderChoice`` fits)."""

    @property
    def provider(self) -> Any:
        """The :class:`~voicehost.contracts.TranscriptionProvider` or
        :class:`~voicehost.contracts.SpeechProvider`."""
        ...

    @property
    def config(self) -> ProviderConfig:
        """Its parsed config, handed to every session / synthesis."""
        ...


@attrs.frozen
class Binding:
    """A plain :class:`ProviderBinding` for tests and embedding.

    ``config`` may be given as a mapping: it is then parsed into the provider's
    ``config_class`` (defaults for every key left out).

    Raises:
        pydantic.ValidationError: the mapping does not fit the provider's config class.
    """

    provider: Any
    config: ProviderConfig = attrs.field(factory=dict)  # type: ignore[assignment]

    def __attrs_post_init__(self) -> None:
        if isinstance(self.config, Mapping):
            model = getattr(self.provider, "config_class", ProviderConfig)
            object.__setattr__(self, "config", model.model_validate(dict(self.config)))


class CallServer:
    """Shared state of one server: settings, providers, limits, live calls.

    Attributes:
        settings / twilio: the ``[server]`` and ``[twilio]`` settings.
        live: the :class:`LiveCallState` (tokens, webhook call data, live-call registry);
            a :class:`MemoryLiveState` unless one is given.
        instance_id: this server's name in the live-call registry (random unless given).
        calls: the calls live on this instance, by call SID.
        sockets: every open Media Streams socket of this instance (pending and live).
        draining: True once :meth:`drain` began; new calls are refused.
        ended_calls: how many calls have ended here (for health and tests).
    """

    def __init__(
        self,
        settings: ServerSettings,
        *,
        twilio: TwilioSettings | None = None,
        stt: ProviderBinding | None = None,
        tts: ProviderBinding | None = None,
        handler: CallHandler | None = None,
        live: LiveCallState | None = None,
        instance_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.twilio = twilio or TwilioSettings()
        self.stt = stt
        self.tts = tts
        if handler is None:
            handler = default_handler(settings.greeting)
        self.handler = handler
        self.live: LiveCallState = (
            live if live is not None else MemoryLiveState(settings.token_ttl_s)
        )
        self.instance_id = instance_id or secrets.token_hex(8)
        self.pending = PendingLimiter(
            settings.max_pending_connections, settings.max_pending_connections_per_ip
        )
        self.sockets: set[StreamSocket] = set()
        self.calls: dict[str, Call] = {}
        self._streams: dict[str, StreamSocket] = {}
        self.draining = False
        self.ended_calls = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # --- calls -----------------------------------------------------------------------------

    async def claim_call(self, call_sid: str) -> bool:
        """Claim ``call_sid`` for a stream starting here (atomic in the live state).

        Returns:
            False when the call already has a live stream, here or on another instance.
        """
        return await self.live.mark_live(call_sid, self.instance_id)

    async def release_call(self, call_sid: str) -> None:
        """Give up a claim that never became a live :class:`Call` here."""
        await self.live.mark_ended(call_sid, self.instance_id)

    def add_call(self, call: Call, stream: StreamSocket) -> None:
        """A stream started (after :meth:`claim_call`): ``call`` is live on this instance."""
        self.calls[call.call_sid] = call
        self._streams[call.call_sid] = stream
        self._idle.clear()

    async def end_call(self, call: Call, reason: str) -> None:
        """End ``call`` (exactly once), release its claim and forget its webhook data."""
        await call.end(reason)
        if self.calls.get(call.call_sid) is call:
            del self.calls[call.call_sid]
            self._streams.pop(call.call_sid, None)
            self.ended_calls += 1
            try:
                await self.live.mark_ended(call.call_sid, self.instance_id)
                await self.live.forget_call(call.call_sid)
            except Exception:  # a shared store that is down must not stop the call's end
                log.exception("call %s: releasing it in the live state failed", call.call_sid)
        if not self.calls:
            self._idle.set()

    async def update_status(self, call_sid: str, status: str) -> None:
        """A status callback: record ``status``; a terminal one ends a call live here and
        revokes an unused stream token. (A call live on another instance is only recorded:
        that instance ends it on its own stream's ``stop``.)"""
        await self.live.update_status(call_sid, status)
        call = self.calls.get(call_sid)
        if call is not None:
            call.status = status
        log.info("call %s: status %s", call_sid, sanitize_log_text(status, 32))
        if status in TERMINAL_STATUSES:
            await self.live.revoke_token(call_sid)
            stream = self._streams.get(call_sid)
            if stream is not None:
                stream.request_close(1000, "Call ended", reason=f"status:{status}")
            elif not await self.live.is_live(call_sid):
                await self.live.forget_call(call_sid)

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
