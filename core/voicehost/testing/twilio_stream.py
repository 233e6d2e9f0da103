"""Twilio's side of one Media Streams socket, for :class:`~voicehost.testing.twilio.
TwilioSimulator`: sends ``connected``/``start``/``media``/``dtmf``/``stop``, models Twilio's
playback buffer (marks echo when their audio has played, at once on ``clear``) and records
everything the server sends (wire-protocols.md §1.3, §1.4, §1.9).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

__all__ = ["FRAME_BYTES", "SAMPLE_RATE", "SimulatedCall", "random_sid"]

FRAME_BYTES = 160
SAMPLE_RATE = 8000


def random_sid(prefix: str) -> str:
    """A Twilio-style id: ``prefix`` (``CA``, ``MZ``, ``AC``) + 32 hex digits."""
    return prefix + secrets.token_hex(16)


class SimulatedCall:
    """One simulated call's Media Streams socket (Twilio's side).

    Attributes:
        call_sid / stream_sid / account_sid: the ids it uses.
        token: the stream token from the TwiML (None when opened without the webhook).
        custom_parameters: what ``start`` sends as ``customParameters``.
        received_audio: every μ-law byte received in ``media`` messages.
        frame_times: ``time.monotonic()`` arrival time of each ``media`` message.
        frame_sizes: the μ-law bytes in each ``media`` message, parallel to ``frame_times``
            (``received_audio`` cut at these sizes gives each message's audio).
        sent_frames: ``(time.monotonic() when sent, μ-law bytes)`` of each inbound ``media``
            message sent (the caller's audio on its timeline).
        events: every message received, in order, each with ``"_t"`` (arrival time) added.
        echoed_marks: mark names echoed back, in order.
        clear_times: arrival times of ``clear`` messages.
        protocol_errors: what the server sent that Twilio would not accept.
        close_code: the WebSocket close code once closed.
    """

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        *,
        call_sid: str,
        account_sid: str,
        speed: float = 1.0,
    ) -> None:
        self.ws = ws
        self.call_sid = call_sid
        self.stream_sid = random_sid("MZ")
        self.account_sid = account_sid
        self.speed = speed
        self.token: str | None = None
        self.twiml = ""
        self.stream_url = ""
        self.custom_parameters: dict[str, str] = {}
        self.received_audio = bytearray()
        self.frame_times: list[float] = []
        self.frame_sizes: list[int] = []
        self.sent_frames: list[tuple[float, bytes]] = []
        self.events: list[dict[str, Any]] = []
        self.echoed_marks: list[str] = []
        self.clear_times: list[float] = []
        self.protocol_errors: list[str] = []
        self.close_code: int | None = None
        self._seq = 0
        self._chunk = 0
        self._play_until = 0.0
        self._pending_marks: list[tuple[float, str]] = []
        self._mark_timer: asyncio.TimerHandle | None = None
        self._changed = asyncio.Event()
        self._closed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    # --- sending ---------------------------------------------------------------------------

    def _next_seq(self) -> str:
        self._seq += 1
        return str(self._seq)

    async def send_json(self, message: Mapping[str, Any]) -> None:
        """Send any JSON message as is."""
        await self.ws.send_str(json.dumps(message))

    async def send_raw(self, data: str | bytes) -> None:
        """Send a raw text (str) or binary (bytes) frame, e.g. malformed input."""
        if isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data)

    async def send_connected(self) -> None:
        """``{"event":"connected","protocol":"Call","version":"1.0.0"}``."""
        await self.send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    async def send_start(
        self, *, token: str | None = None, custom_parameters: Mapping[str, str] | None = None
    ) -> None:
        """``start`` with ``customParameters`` (default: the TwiML's, token included)."""
        params = dict(self.custom_parameters if custom_parameters is None else custom_parameters)
        if token is not None:
            params["token"] = token
        self._seq = 0
        await self.send_json(
            {
                "event": "start",
                "sequenceNumber": self._next_seq(),
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": params,
                },
                "streamSid": self.stream_sid,
            }
        )

    async def send_media(self, ulaw: bytes) -> None:
        """One inbound ``media`` message carrying ``ulaw`` (normally 160 bytes)."""
        self._chunk += 1
        self.sent_frames.append((time.monotonic(), bytes(ulaw)))
        await self.send_json(
            {
                "event": "media",
                "sequenceNumber": self._next_seq(),
                "media": {
                    "track": "inbound",
                    "chunk": str(self._chunk),
                    "timestamp": str((self._chunk - 1) * 20),
                    "payload": base64.b64encode(ulaw).decode("ascii"),
                },
                "streamSid": self.stream_sid,
            }
        )

    async def play(self, ulaw: bytes, *, speed: float | None = None) -> None:
        """Send caller audio as 20 ms frames on an absolute schedule (``speed`` × real time;
        ``math.inf``: no pacing). A final partial frame is padded with μ-law silence."""
        speed = self.speed if speed is None else speed
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i in range(0, len(ulaw), FRAME_BYTES):
            frame = ulaw[i : i + FRAME_BYTES].ljust(FRAME_BYTES, b"\xff")
            if math.isfinite(speed):
                delay = t0 + (i // FRAME_BYTES) * 0.02 / speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await self.send_media(frame)

    async def dtmf(self, digit: str) -> None:
        """A key press: ``{"event":"dtmf","dtmf":{"track":"inbound_track","digit":…}}``."""
        await self.send_json(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "sequenceNumber": self._next_seq(),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    async def stop(self, *, close: bool = True) -> None:
        """``stop`` (the caller hung up), then wait for the server to close the socket."""
        if not self.ws.closed:
            await self.send_json(
                {
                    "event": "stop",
                    "sequenceNumber": self._next_seq(),
                    "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
                    "streamSid": self.stream_sid,
                }
            )
        if close:
            try:
                await self.wait_closed(timeout=10)
            except TimeoutError:
                await self.close()

    async def close(self) -> None:
        """Close the socket from Twilio's side (no ``stop``)."""
        if not self.ws.closed:
            await self.ws.close()
        if self._mark_timer is not None:
            self._mark_timer.cancel()
        try:
            await asyncio.wait_for(self._reader, 5)
        except (TimeoutError, asyncio.CancelledError):
            self._reader.cancel()

    # --- receiving -------------------------------------------------------------------------

    @property
    def played_until(self) -> float:
        """``time.monotonic()`` when the simulated playback buffer runs empty."""
        return self._play_until

    def events_of(self, event: str) -> list[dict[str, Any]]:
        """Received messages with this ``event``."""
        return [e for e in self.events if e.get("event") == event]

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 - a test helper's plain timeout
    ) -> None:
        """Wait until ``predicate()`` holds (re-checked on every received message).

        Raises:
            TimeoutError: it did not within ``timeout`` seconds.
        """

        async def check() -> None:
            while not predicate():
                if self._closed.is_set():
                    if predicate():
                        return
                    raise ConnectionError(f"socket closed ({self.close_code}) while waiting")
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(check(), timeout)
        except TimeoutError:
            raise TimeoutError(f"condition not met within {timeout} s") from None

    async def wait_for_audio(
        self,
        n_bytes: int | None = None,
        *,
        seconds: float | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> bytes:
        """Wait until ``n_bytes`` (or ``seconds`` × 8000) μ-law bytes were received in all;
        returns all received audio."""
        target = n_bytes if n_bytes is not None else int((seconds or 0.02) * SAMPLE_RATE)
        await self.wait_for(lambda: len(self.received_audio) >= target, timeout)
        return bytes(self.received_audio)

    async def wait_for_event(
        self,
        event: str,
        *,
        count: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Wait until ``count`` messages of ``event`` (matching ``where``) arrived; returns
        the last of them."""

        def matches() -> list[dict[str, Any]]:
            return [e for e in self.events_of(event) if where is None or where(e)]

        await self.wait_for(lambda: len(matches()) >= count, timeout)
        return matches()[count - 1]

    async def wait_closed(self, timeout: float = 10.0) -> int | None:  # noqa: ASYNC109
        """Wait until the server closed the socket; returns the close code."""
        try:
            await asyncio.wait_for(self._closed.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(f"socket still open after {timeout} s") from None
        return self.close_code

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                now = time.monotonic()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self._on_message(msg.data, now)
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    self.protocol_errors.append("binary frame from the server")
                self._changed.set()
        finally:
            self.close_code = self.ws.close_code
            if self._mark_timer is not None:
                self._mark_timer.cancel()
            self._closed.set()
            self._changed.set()

    def _on_message(self, text: str, now: float) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            self.protocol_errors.append(f"not JSON: {text[:80]!r}")
            return
        message["_t"] = now
        self.events.append(message)
        event = message.get("event")
        if message.get("streamSid") != self.stream_sid:
            self.protocol_errors.append(f"{event}: streamSid {message.get('streamSid')!r}")
        if event == "media":
            try:
                audio = base64.b64decode(message["media"]["payload"], validate=True)
            except (KeyError, TypeError, binascii.Error, ValueError):
                self.protocol_errors.append("media: bad payload")
                return
            self.received_audio += audio
            self.frame_times.append(now)
            self.frame_sizes.append(len(audio))
            start = max(self._play_until, now)
            self._play_until = start + len(audio) / SAMPLE_RATE / self.speed
        elif event == "mark":
            name = (message.get("mark") or {}).get("name")
            if not isinstance(name, str):
                self.protocol_errors.append("mark: no name")
                return
            self._pending_marks.append((max(self._play_until, now), name))
            self._schedule_marks()
        elif event == "clear":
            self.clear_times.append(now)
            self._play_until = now
            pending, self._pending_marks = self._pending_marks, []
            for _, name in pending:
                self._echo_mark(name)
        else:
            self.protocol_errors.append(f"unknown event {event!r}")

    def _schedule_marks(self) -> None:
        if self._mark_timer is not None:
            self._mark_timer.cancel()
            self._mark_timer = None
        if not self._pending_marks:
            return
        loop = asyncio.get_running_loop()
        due = self._pending_marks[0][0]
        delay = max(0.0, due - time.monotonic())
        self._mark_timer = loop.call_at(loop.time() + delay, self._marks_due)

    def _marks_due(self) -> None:
        self._mark_timer = None
        now = time.monotonic()
        while self._pending_marks and self._pending_marks[0][0] <= now + 0.001:
            _, name = self._pending_marks.pop(0)
            self._echo_mark(name)
        self._schedule_marks()

    def _echo_mark(self, name: str) -> None:
        self.echoed_marks.append(name)
        self._changed.set()
        if self.ws.closed:
            return
        message = {
            "event": "mark",
            "sequenceNumber": self._next_seq(),
            "streamSid": self.stream_sid,
            "mark": {"name": name},
        }
        task = asyncio.get_running_loop().create_task(self.ws.send_str(json.dumps(message)))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
