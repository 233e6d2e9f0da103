"""The Twilio Media Streams WebSocket (``GET stream_path``): one :class:`MediaStream` per
socket.

Protocol (wire-protocols.md §1.3): ``connected`` → ``start`` → ``media``… (+ ``dtmf``,
``mark``) → ``stop``. Limits (seed defaults, see :class:`~voicehost.server.settings.
ServerSettings`):

* HTTP 503 before the upgrade when ``max_connections`` sockets are open or the server drains;
* close 1013 when ``max_pending_connections`` sockets (``max_pending_connections_per_ip`` from
  this IP) already wait for ``start``;
* close 1008 when no valid ``start`` arrives within ``pre_start_timeout_ms``, when the
  ``start`` lacks a call SID or carries an unknown, reused, expired or wrong token, on a
  second ``start``, and when the call SID already has a live stream (on this instance or,
  with a shared :class:`~voicehost.server.live_state.LiveCallState`, another one);
* frames over ``max_inbound_message_bytes`` close the socket 1009 (aiohttp's ``max_msg_size``);
* more than ``max_outbound_buffer_bytes`` unsent closes it 1013 and ends the call at once;
  the peer stopped reading, so a graceful close would hold the socket (and its file
  descriptor) for as long as the peer keeps it open: the peer gets 2 s to read the close
  frame, then the connection is released, with a TCP reset when it has not
  (:mod:`voicehost.server.teardown`).

Authentication: the stream is tied to a signed voice webhook by its single-use token; the
``X-Twilio-Signature`` Twilio may send on the upgrade itself is not checked (its URL form is
only partly documented, wire-protocols.md §1.6).

Malformed input (bad JSON, bad base64, unknown events, binary frames, wrong field types, a
``dtmf`` digit that is not one of ``0-9*#A-D``) is counted per kind
(:attr:`MediaStream.malformed`, and ``voicehost_malformed_messages_total``), logged once per
kind with the text sanitised and cut to 120 characters, never reaches the application, and
never ends the call.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from aiohttp import WSMsgType, web

from voicehost import metrics
from voicehost.server.call import Call
from voicehost.server.events import BOT_HANGUP, CALLER_HANGUP, ERROR, IDLE
from voicehost.server.live_state import CallRecord, LiveStateUnavailable
from voicehost.server.outbound import OutboundChannel
from voicehost.server.playback import Playback
from voicehost.server.protocol import (
    MalformedMessage,
    decode_payload,
    dtmf_digit,
    parse_message,
    sanitize_log_text,
    section,
    valid_sid,
)
from voicehost.server.state import SERVER_KEY, CallServer
from voicehost.server.teardown import HeldConnection, reset, transport_closed
from voicehost.server.tokens import TokenRejected

log = logging.getLogger(__name__)

__all__ = ["MediaStream", "handle_media_stream"]

_CLOSE_TIMEOUT_S = 5.0
# A peer that stopped reading gets this long to read the 1013 close frame before its
# connection is released (reset when it has not), s.
_ABORT_GRACE_S = 2.0
_MAX_PARAMETERS = 32
_MAX_PARAMETER_CHARS = 1024


async def handle_media_stream(request: web.Request) -> web.StreamResponse:
    """aiohttp handler of ``GET stream_path``: limits, upgrade, then :meth:`MediaStream.run`."""
    server = request.app[SERVER_KEY]
    settings = server.settings
    if server.draining:
        return web.Response(status=503, text="Server is shutting down\n")
    if len(server.sockets) >= settings.max_connections:
        log.warning("rejecting media stream upgrade: %d sockets open", len(server.sockets))
        return web.Response(status=503, text="Too many media stream connections\n")
    ws = web.WebSocketResponse(
        max_msg_size=settings.max_inbound_message_bytes,
        autoping=True,
        heartbeat=settings.websocket_heartbeat_s,
    )
    if not ws.can_prepare(request).ok:
        return web.Response(status=400, text="Expected a WebSocket upgrade\n")
    stream = MediaStream(server, request, ws)
    server.sockets.add(stream)
    try:
        await ws.prepare(request)
        await stream.run()
    finally:
        server.sockets.discard(stream)
    return ws


class MediaStream:
    """One Media Streams socket: its state before ``start`` and its :class:`Call` after.

    Attributes:
        ip: the client address (the proxy's when behind one).
        call: the call once a ``start`` was accepted.
        malformed: counts of malformed messages by kind (shared with ``call.malformed``).
        close_code: the code this side closed with, if it did.
    """

    def __init__(self, server: CallServer, request: web.Request, ws: web.WebSocketResponse):
        self.server = server
        self.request = request
        self.ws = ws
        self.ip = client_ip(request, server.settings.trusted_proxy_hops)
        self.call: Call | None = None
        self.channel: OutboundChannel | None = None
        self.malformed: collections.Counter[str] = collections.Counter()
        self.close_code: int | None = None
        self._end_reason: str | None = None
        self._closing: asyncio.Task[None] | None = None
        self._transport = request.transport

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Read messages until the socket closes, then end the call (exactly once)."""
        settings = self.server.settings
        refused = self.server.pending.acquire(self, self.ip)
        if refused:
            log.warning("closing media stream from %s: %s", self.ip, refused)
            await self._close_now(1013, refused)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.pre_start_timeout_ms / 1000
        try:
            while not self.ws.closed:
                timeout = settings.stream_idle_timeout_s
                if self.call is None:
                    timeout = deadline - loop.time()
                    if timeout <= 0:
                        await self._start_timeout()
                        break
                try:
                    msg = await self.ws.receive(timeout=timeout)
                except TimeoutError:
                    if self.call is None:
                        await self._start_timeout()
                    else:
                        await self._idle_timeout()
                    break
                if msg.type is WSMsgType.TEXT:
                    if not await self._on_text(msg.data):
                        break
                elif msg.type is WSMsgType.BINARY:
                    self._count_malformed(MalformedMessage("binary", "binary frame", ""))
                elif msg.type is WSMsgType.ERROR:
                    log.warning("media stream %s: %s", self._who(), msg.data)
                    self._end_reason = self._end_reason or ERROR
                    break
                else:  # CLOSE / CLOSING / CLOSED
                    break
        finally:
            self.server.pending.release(self)
            await self._finish()

    async def _finish(self) -> None:
        if self.call is not None:
            # no ``stop`` and no reason of ours: the socket broke (or a heartbeat failed)
            await self.server.stream_ended(self.call, self._end_reason or ERROR)
        if self.channel is not None:
            await self.channel.close()
        if self._closing is not None:
            await asyncio.gather(self._closing, return_exceptions=True)
        elif not self.ws.closed:
            await self._close_now(1000, "")

    def request_close(
        self, code: int, message: str, *, reason: str | None = None, abort: bool = False
    ) -> None:
        """Close the socket from any task (hang-up, overflow, shutdown); the read loop then
        ends the call with ``reason`` (default: kept, or ``"error"``).

        ``abort`` is for a peer that stopped reading (outbound backlog): the close frame is
        queued, the call ends at once, and ``_ABORT_GRACE_S`` (2 s) later the connection is
        closed, with a TCP reset unless the peer read everything. A graceful close would
        wait to flush the backlog to a peer that never reads, holding the socket and its
        file descriptor for as long as the peer keeps the connection open.
        """
        if reason and self._end_reason is None:
            self._end_reason = reason
        if self._closing is None and not self.ws.closed:
            self._closing = asyncio.get_running_loop().create_task(
                self._close_now(code, message, abort=abort)
            )

    async def _close_now(self, code: int, message: str, *, abort: bool = False) -> None:
        if self.close_code is None:
            self.close_code = code
        if abort:
            await self._close_abandoned(code, message)
            return
        try:
            await asyncio.wait_for(
                self.ws.close(code=code, message=message.encode()[:120], drain=False),
                _CLOSE_TIMEOUT_S,
            )
        except (TimeoutError, Exception) as exc:
            log.debug("closing media stream: %r", exc)
            if self._transport is not None:
                self._transport.abort()

    async def _close_abandoned(self, code: int, message: str) -> None:
        """Close for a peer that stopped reading: queue the close frame, end the call now,
        give the peer ``_ABORT_GRACE_S`` to read it, then let the connection go (reset
        unless the peer took every byte); see :mod:`voicehost.server.teardown`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _ABORT_GRACE_S
        held = HeldConnection.hold(self._transport)
        closing = asyncio.ensure_future(
            self.ws.close(code=code, message=message.encode()[:120], drain=False)
        )
        if self.call is not None:  # the read loop may be waiting on the peer: end it now
            await self.server.end_call(self.call, self._end_reason or ERROR)
        try:
            await asyncio.wait_for(closing, max(0.0, deadline - loop.time()))
        except (TimeoutError, Exception) as exc:
            log.debug("closing media stream: %r", exc)
        transport = self._transport
        stuck = False  # asyncio still holds bytes the peer never took (the close frame too)
        if transport is not None and not transport_closed(transport):
            stuck = transport.get_write_buffer_size() > 0 or not transport.is_closing()
            if held is None:
                reset(transport)
            else:
                transport.abort()  # asyncio lets go; the held descriptor keeps the connection
        if held is None:
            return
        await asyncio.sleep(max(0.0, deadline - loop.time()))  # the peer's grace
        if held.release(force_reset=stuck):
            log.info("media stream %s: connection reset after close %d", self._who(), code)

    async def _idle_timeout(self) -> None:
        log.warning(
            "call %s: no message for %.0f s (stream_idle_timeout_s); ending it",
            self._who(),
            self.server.settings.stream_idle_timeout_s,
        )
        self._end_reason = self._end_reason or IDLE
        await self._close_now(1000, "Idle")

    async def _start_timeout(self) -> None:
        log.warning(
            "closing media stream from %s: no valid start within %d ms",
            self.ip,
            self.server.settings.pre_start_timeout_ms,
        )
        await self._close_now(1008, "Start timeout")

    # --- messages --------------------------------------------------------------------------

    async def _on_text(self, data: str) -> bool:
        """Handle one text frame; False ends the read loop."""
        try:
            message = parse_message(data)
            event = message["event"]
            if event == "start":
                return await self._on_start(message)
            if event == "connected":
                log.debug("media stream %s: connected %s", self._who(), message.get("protocol"))
                return True
            if self.call is None:
                log.debug("media stream %s: %s before start ignored", self._who(), event)
                return True
            if event == "media":
                media = section(message, "media")
                if media.get("track", "inbound") not in ("inbound", "inbound_track"):
                    return True
                self.call.feed_audio(decode_payload(media.get("payload")))
            elif event == "dtmf":
                self.call.dtmf(dtmf_digit(message, data))
            elif event == "mark":
                name = section(message, "mark").get("name")
                if not isinstance(name, str):
                    raise MalformedMessage("field", "mark.name missing", data)
                self.call.mark(name)
            elif event == "stop":
                self._end_reason = self._end_reason or CALLER_HANGUP
                return False
        except MalformedMessage as exc:
            self._count_malformed(exc)
        return True

    async def _on_start(self, message: dict[str, Any]) -> bool:
        if self.call is not None:
            log.warning("media stream %s: second start; closing", self._who())
            self._end_reason = self._end_reason or ERROR
            await self._close_now(1008, "Duplicate start")
            return False
        start = section(message, "start")
        call_sid = start.get("callSid")
        stream_sid = start.get("streamSid") or message.get("streamSid")
        if not valid_sid(call_sid) or not valid_sid(stream_sid):
            log.warning("media stream from %s: start without a valid callSid/streamSid", self.ip)
            await self._close_now(1008, "Missing callSid")
            return False
        assert isinstance(call_sid, str) and isinstance(stream_sid, str)
        params = start.get("customParameters") or {}
        if not isinstance(params, dict):
            params = {}
        token = params.get("token")
        if not isinstance(token, str) or not token:
            token = self.request.query.get("token")
        if self.server.draining:
            await self._close_now(1001, "Server is shutting down")
            return False
        try:  # spend the token, read the webhook's data, claim the call: one step
            started = await self.server.live.start_stream(call_sid, token, self.server.instance_id)
        except TokenRejected as exc:
            log.warning("rejecting stream for call %s from %s: %s", call_sid, self.ip, exc)
            await self._close_now(1008, "Unknown call")
            return False
        except LiveStateUnavailable:
            return await self._state_unavailable(call_sid)
        record = started.record
        if not started.claimed:
            log.warning(
                "rejecting a second stream for call %s from %s: it is already live",
                call_sid,
                self.ip,
            )
            await self._close_now(1008, "Call already streaming")
            return False
        if self._closing is not None or self.ws.closed:  # closed while we waited on the state
            await self.server.release_call(call_sid)
            return False
        self.server.pending.release(self)
        media_format = start.get("mediaFormat")
        if isinstance(media_format, dict) and (
            media_format.get("encoding", "audio/x-mulaw") != "audio/x-mulaw"
            or media_format.get("sampleRate", 8000) != 8000
        ):
            log.warning(
                "call %s: unexpected mediaFormat %s; treating the audio as μ-law 8 kHz",
                call_sid,
                sanitize_log_text(str(media_format), 120),
            )
        account_sid = start.get("accountSid")
        account = account_sid if valid_sid(account_sid) else ""
        try:
            self.call = self._make_call(call_sid, stream_sid, params, account, record)
        except BaseException:
            await self.server.release_call(call_sid)
            raise
        self.server.add_call(self.call, self)
        log.info("call %s: stream %s started (%s)", call_sid, stream_sid, self.ip)
        self.server.call_answered(self.call)
        self.call.start()
        return True

    async def _state_unavailable(self, call_sid: str) -> bool:
        """The shared live state is down: refuse the stream (1013, try again later)."""
        log.warning("rejecting stream for call %s: the call state store is unreachable", call_sid)
        await self._close_now(1013, "Call state unavailable")
        return False

    def _make_call(
        self,
        call_sid: str,
        stream_sid: str,
        params: dict[str, Any],
        account_sid: str,
        record: CallRecord | None,
    ) -> Call:
        settings = self.server.settings
        transport = self._transport

        def buffer_size() -> int:
            return transport.get_write_buffer_size() if transport is not None else 0

        self.channel = OutboundChannel(
            self.ws.send_str,
            buffer_size,
            settings.max_outbound_buffer_bytes,
            on_overflow=lambda _n: self.request_close(
                1013, "Backpressure: send buffer exceeded", reason=ERROR, abort=True
            ),
        )
        self.channel.start()
        tts = self.server.tts
        playback = Playback(
            self.channel,
            stream_sid,
            tts.provider if tts else None,
            tts.config if tts else None,
            lead_ms=settings.playback_lead_ms,
            mark_timeout_ms=settings.mark_timeout_ms,
            max_queued=settings.max_queued_replies,
        )
        stt, turn = self.server.stt, self.server.turn
        call = Call(
            call_sid=call_sid,
            stream_sid=stream_sid,
            playback=playback,
            handler=self.server.handler,
            request_close=lambda code, msg: self.request_close(code, msg, reason=BOT_HANGUP),
            account_sid=account_sid or (record.account_sid if record else ""),
            from_=record.from_ if record else "",
            to=record.to if record else "",
            direction=record.direction if record else "",
            answered_by=record.answered_by if record else "",
            custom_parameters=_custom_parameters(params),
            stt_provider=stt.provider if stt else None,
            stt_config=stt.config if stt else None,
            turn=turn,
            barge_in=settings.barge_in,
            barge_in_min_speech_ms=settings.barge_in_min_speech_ms,
            preemptive=settings.preemptive_generation,
            stt_close_timeout_s=settings.stt_close_timeout_s,
            control=self.server.control,
        )
        call.malformed = self.malformed
        return call

    def _count_malformed(self, exc: MalformedMessage) -> None:
        self.malformed[exc.kind] += 1
        metrics.count_malformed(exc.kind)
        if self.malformed[exc.kind] == 1:
            log.warning(
                "media stream %s: malformed message (%s: %s): %s",
                self._who(),
                exc.kind,
                exc,
                sanitize_log_text(exc.raw, 120),
            )

    def _who(self) -> str:
        return self.call.call_sid if self.call else f"from {self.ip}"


def client_ip(request: web.Request, trusted_proxy_hops: int = 0) -> str:
    """The caller's address for per-IP limits: the socket peer, or with
    ``trusted_proxy_hops`` = N the N-th entry from the right of ``X-Forwarded-For``
    (falling back to the peer when the header is shorter or absent)."""
    peer = request.remote or "unknown"
    if trusted_proxy_hops <= 0:
        return peer
    forwarded = [
        part.strip()
        for header in request.headers.getall("X-Forwarded-For", [])
        for part in header.split(",")
        if part.strip()
    ]
    if len(forwarded) < trusted_proxy_hops:
        return peer
    return forwarded[-trusted_proxy_hops]


def _custom_parameters(params: dict[str, Any]) -> dict[str, str]:
    """``start.customParameters`` minus the token, as strings: at most 32 entries, names and
    values of at most 1024 characters that are valid Unicode (no lone surrogates); other
    entries are dropped."""
    kept: dict[str, str] = {}
    for name, value in params.items():
        if name == "token" or not isinstance(value, (str, int, float, bool)):
            continue
        text = str(value)
        if len(name) > _MAX_PARAMETER_CHARS or len(text) > _MAX_PARAMETER_CHARS:
            continue
        if not (_encodable(name) and _encodable(text)):
            continue
        kept[name] = text
        if len(kept) >= _MAX_PARAMETERS:
            break
    return kept


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
