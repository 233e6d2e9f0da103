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
import collections
import logging
import secrets
from collections.abc import Mapping
from typing import Any, Protocol

import attrs
from aiohttp import web

from voicehost import metrics
from voicehost.config_model import ProviderConfig
from voicehost.errors import VoicehostError
from voicehost.server.call import Call
from voicehost.server.call_control import CallControl, CallControlError, CallRest, SayFallback
from voicehost.server.events import (
    BOT_HANGUP,
    CALLER_HANGUP,
    END_REASONS,
    TERMINAL_STATUSES,
    CallEvent,
    event_from_status,
)
from voicehost.server.handler import CallHandler, default_handler
from voicehost.server.limits import PendingLimiter
from voicehost.server.live_state import (
    CallForwarder,
    CallRecord,
    LiveCallState,
    LiveStateUnavailable,
    MemoryLiveState,
)
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
# Calls whose lifecycle events are remembered (to send each kind once), most recent first.
_EVENT_MEMORY = 10_000


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
        forwarder: hands actions on calls live on another instance to that instance
            (:mod:`voicehost.server.redis_actions`); None for a single instance.
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
        rest: CallRest | None = None,
        turn: ProviderBinding | None = None,
    ) -> None:
        self.settings = settings
        self.twilio = twilio or TwilioSettings()
        self.rest = rest
        self.control = CallControl(
            rest,
            webhook_url=settings.public_url + settings.webhook_path,
            say_voice=self.twilio.say_voice,
            transfer_message=settings.transfer_message,
            max_duration_s=settings.max_call_duration_s,
            max_duration_message=settings.max_duration_message,
            idle_timeout_s=settings.stream_idle_timeout_s,
        )
        self.stt = stt
        self.tts = tts
        self.turn = turn
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
        self.forwarder: CallForwarder | None = None
        self.ended_calls = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._events_sent: collections.OrderedDict[str, dict[str, CallEvent]] = (
            collections.OrderedDict()
        )
        self._event_tasks: set[asyncio.Task[None]] = set()
        metrics.track_live(self)  # voicehost_active_calls, voicehost_websocket_connections

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

    async def stream_ended(self, call: Call, reason: str) -> None:
        """The Media Stream of ``call`` is gone: end the call, unless it moved to the
        ``<Say>``/``<Gather>`` fallback (then it lives on without the socket)."""
        self._streams.pop(call.call_sid, None)
        if not call.streaming and call.end_reason is None and not call.ended:
            call.detach_stream(lambda _code, _msg: self._end_soon(call))
            log.info("call %s: stream gone; the call goes on with <Say>/<Gather>", call)
            return
        await self.end_call(call, reason)

    async def end_call(self, call: Call, reason: str) -> None:
        """End ``call`` (exactly once), send its ``ended`` event, release its claim and
        keep how its stream ended (for the webhook's ``after-stream`` step)."""
        await call.end(reason)
        if self.calls.get(call.call_sid) is call:
            del self.calls[call.call_sid]
            self._streams.pop(call.call_sid, None)
            self.ended_calls += 1
            outcome = call.end_reason or reason
            self.emit(self._event(call, "ended", reason=outcome))
            try:
                await self.live.update_call(call.call_sid, stream_outcome=outcome)
                await self.live.mark_ended(call.call_sid, self.instance_id)
            except LiveStateUnavailable as exc:  # logged once by the store; the call ends
                log.info("call %s: not released in the live state: %s", call.call_sid, exc)
            except Exception:  # a shared store that is down must not stop the call's end
                log.exception("call %s: releasing it in the live state failed", call.call_sid)
        if not self.calls:
            self._idle.set()

    def _end_soon(self, call: Call) -> None:
        task = asyncio.get_running_loop().create_task(self.end_call(call, call.end_reason or ""))
        self._event_tasks.add(task)
        task.add_done_callback(self._event_tasks.discard)

    async def hangup_call(self, call_sid: str, reason: str = BOT_HANGUP) -> None:
        """Hang up ``call_sid``: a call live here ends through :meth:`Call.hangup`; one live
        on another instance is hung up there (:attr:`forwarder`); any other (ringing, queued,
        or whose instance is gone) with a REST update ``Status=completed``, which cancels a
        call that is still ringing.

        Raises:
            CallControlError: the call is not live here and REST is not configured, or
                Twilio refused the update.
        """
        call = self.calls.get(call_sid)
        if call is not None:
            await call.hangup(reason)
            return
        if self.forwarder is not None and await self.forwarder.forward(
            call_sid, "hangup", {"reason": reason}
        ):
            return
        rest = self.control.require_rest("hang up a call that is not streaming here")
        try:
            await rest.hangup(call_sid)
        except VoicehostError as exc:
            raise CallControlError(f"hang-up of {call_sid} refused: {exc}") from exc
        log.info("call %s: hung up over REST (%s)", call_sid, sanitize_log_text(reason, 32))

    async def update_status(
        self, call_sid: str, status: str, form: Mapping[str, Any] | None = None
    ) -> None:
        """A status callback: record ``status`` and send its lifecycle event; a terminal
        one ends a call live here (``completed`` of a live call is ``caller-hangup``) and
        revokes an unused stream token. A terminal status of a call live on another instance
        is handed to that instance (:attr:`forwarder`), which ends it."""
        record = await self.live.update_call(
            call_sid,
            status=status,
            answered_by=str(form.get("AnsweredBy", "")) or None if form else None,
        )
        call = self.calls.get(call_sid)
        if call is not None:
            call.status = status
        log.info("call %s: status %s", call_sid, sanitize_log_text(status, 32))
        event = event_from_status({**(form or {}), "CallSid": call_sid, "CallStatus": status})
        if status not in TERMINAL_STATUSES:
            if event is not None:
                self.emit(self._fill(event, record))
            return
        await self.live.revoke_token(call_sid)
        reason = CALLER_HANGUP if status == "completed" else status
        stream = self._streams.get(call_sid)
        if stream is not None:
            stream.request_close(1000, "Call ended", reason=reason)
        elif call is not None:  # a call without a stream (the <Say>/<Gather> fallback)
            call.end_reason = call.end_reason or reason
            await self.end_call(call, reason)
        elif self.forwarder is not None and await self.forwarder.forward(
            call_sid, "status", {"status": status, "form": dict(form or {})}
        ):
            return
        elif not await self.live.is_live(call_sid):  # over before (or without) a stream
            assert event is not None
            self.emit(self._fill(event, record))
            await self.live.forget_call(call_sid)

    async def transfer_call(self, call_sid: str, to: str) -> None:
        """Transfer ``call_sid`` to ``to`` (:meth:`Call.transfer`), on this instance or, when
        the call is live on another one, there (:attr:`forwarder`).

        Raises:
            CallControlError: the call is not live on any instance, ``to`` is not a call
                target, REST is not configured, or Twilio refused the update.
        """
        call = self.calls.get(call_sid)
        if call is not None:
            await call.transfer(to)
            return
        if self.forwarder is not None and await self.forwarder.forward(
            call_sid, "transfer", {"to": to}
        ):
            return
        raise CallControlError(f"no live call {call_sid} to transfer")

    # --- lifecycle events ------------------------------------------------------------------

    def emit(self, event: CallEvent) -> None:
        """Hand ``event`` to the handler's ``on_call_event`` (in its own task; errors are
        logged). Each kind is sent once per call; an ``answered`` event that brings
        ``answered_by`` after one without is sent too. An ``ended`` event counts the call
        in ``voicehost_calls_total``."""
        sent = self._events_sent.setdefault(event.call_sid, {})
        self._events_sent.move_to_end(event.call_sid)
        while len(self._events_sent) > _EVENT_MEMORY:
            self._events_sent.popitem(last=False)
        earlier = sent.get(event.kind)
        if earlier is not None and not (
            event.kind == "answered" and event.answered_by and not earlier.answered_by
        ):
            return
        if event.kind != "ended" and "ended" in sent:
            return
        sent[event.kind] = event
        if event.kind == "ended":
            reason = event.reason if event.reason in END_REASONS else "other"
            metrics.count_call_ended(event.direction, reason)
        task = asyncio.get_running_loop().create_task(self._send_event(event))
        self._event_tasks.add(task)
        task.add_done_callback(self._event_tasks.discard)

    async def _send_event(self, event: CallEvent) -> None:
        method = getattr(self.handler, "on_call_event", None)
        if method is None:
            return
        try:
            await method(event)
        except Exception:
            log.exception("call %s: handler on_call_event failed", event.call_sid)

    @staticmethod
    def _fill(event: CallEvent, record: CallRecord | None) -> CallEvent:
        """``event`` with the numbers and direction the webhook stored, where it lacks them."""
        if record is None:
            return event
        return attrs.evolve(
            event,
            direction=event.direction or record.direction,
            from_=event.from_ or record.from_,
            to=event.to or record.to,
            answered_by=event.answered_by
            or (record.answered_by if event.kind == "answered" else ""),
        )

    @staticmethod
    def _event(call: Call, kind: str, *, reason: str = "") -> CallEvent:
        return CallEvent(
            call.call_sid,
            kind,  # type: ignore[arg-type]
            reason=reason,
            answered_by=call.answered_by if kind == "answered" else "",
            direction=call.direction,
            from_=call.from_,
            to=call.to,
        )

    def call_answered(self, call: Call) -> None:
        """A stream started (or a stream-less call began): send its ``answered`` event."""
        self.emit(self._event(call, "answered"))

    def start_stream_less_call(self, record: CallRecord) -> Call:
        """A call whose stream never connected (or could not carry it): a :class:`Call`
        spoken to with ``<Say>`` and listened to with ``<Gather>``. The caller has
        claimed it (:meth:`claim_call`)."""
        call = Call(
            call_sid=record.call_sid,
            stream_sid="",
            playback=SayFallback(record.call_sid, self.control),
            handler=self.handler,
            request_close=lambda _code, _msg: self._end_soon(call),
            account_sid=record.account_sid,
            from_=record.from_,
            to=record.to,
            direction=record.direction,
            answered_by=record.answered_by,
            control=self.control,
        )
        self.calls[call.call_sid] = call
        self._idle.clear()
        self.call_answered(call)
        call.start()
        return call

    # --- health and shutdown ---------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The ``/healthz`` body."""
        return {
            "status": "draining" if self.draining else "ok",
            "instance": self.instance_id,
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
        for call in [c for c in self.calls.values() if not c.streaming]:
            call.end_reason = call.end_reason or "shutdown"
            self._end_soon(call)
        calls = list(self.calls.values())
        if calls:
            await asyncio.wait(
                [asyncio.ensure_future(c.wait_ended()) for c in calls], timeout=_END_TIMEOUT_S
            )
        if self._event_tasks:
            await asyncio.wait(list(self._event_tasks), timeout=_END_TIMEOUT_S)


SERVER_KEY = web.AppKey("voicehost_call_server", CallServer)
