"""Shared parts of the TTS vendor fakes: known audio, scripted streaming, request records.

A fake TTS vendor is an aiohttp app on ``127.0.0.1`` port 0 (see :class:`FakeTTSServer`). What
it streams for a request is set by a :class:`StreamPlan`: the audio is cut into uneven chunks
(odd lengths and sizes that are not a multiple of 160 included), optionally paced, held part
way until the test calls :meth:`FakeTTSServer.release`, or cut off abruptly; or the request is
answered with an error status instead. Every request is recorded, and so is every client
disconnect before the end of the audio (how a test sees that barge-in closed the stream).

Nothing here imports voicehost: the fakes know only the vendors' documented wire protocols.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import numpy as np
from aiohttp import web

#: Uneven chunk sizes, cycled: odd lengths, 1-byte chunks, sizes that are not 160-multiples.
UNEVEN_CHUNKS: tuple[int, ...] = (1, 333, 160, 7, 1023, 480, 2, 1501, 96, 4097)


def tone_pcm16(
    freq_hz: float, seconds: float, rate: int, amplitude: float = 0.3, ramp_ms: float = 0.0
) -> bytes:
    """A sine tone as PCM16 little-endian mono bytes.

    Args:
        freq_hz: tone frequency in Hz.
        seconds: duration.
        rate: sample rate in Hz.
        amplitude: peak level as a fraction of full scale (0 – 1).
        ramp_ms: linear fade in/out, in ms (0: none).
    """
    n = round(seconds * rate)
    t = np.arange(n) / rate
    samples = amplitude * np.sin(2 * math.pi * freq_hz * t)
    if ramp_ms > 0:
        ramp = min(n // 2, int(rate * ramp_ms / 1000))
        envelope = np.ones(n)
        envelope[:ramp] = np.linspace(0, 1, ramp)
        envelope[n - ramp :] = np.linspace(1, 0, ramp)
        samples *= envelope
    return np.clip(np.rint(samples * 32767), -32768, 32767).astype("<i2").tobytes()


def ulaw_encode_16bit(pcm16: bytes) -> bytes:
    """G.711 μ-law encode (the classic 16-bit BIAS 0x84 / CLIP 32635 formulation,
    wire-protocols.md §6.1). Used only to make known vendor μ-law audio."""
    x = np.frombuffer(pcm16, "<i2").astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.clip(np.floor(np.log2(mag)).astype(np.int32) - 7, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def chunked(data: bytes, sizes: Sequence[int]) -> Iterator[bytes]:
    """Cut ``data`` into consecutive chunks of ``sizes`` (cycled); the last may be shorter."""
    pos = 0
    for size in itertools.cycle(sizes):
        if pos >= len(data):
            return
        yield data[pos : pos + size]
        pos += size


@attrs.define
class StreamPlan:
    """How a fake answers one request.

    Attributes:
        status: HTTP status to answer with; anything but 200 sends ``error_body`` as JSON and
            no audio.
        error_body: JSON body of an error answer (the vendor's documented shape by default).
        chunk_sizes: chunk sizes of the audio body, cycled.
        delay_s: pause before each chunk after the first, in seconds.
        hold_after_bytes: send this many bytes (rounded up to a chunk end), then wait until
            :meth:`FakeTTSServer.release` before sending the rest. ``None``: never hold.
        drop_after_bytes: after this many bytes, end the stream abruptly (HTTP: close the
            connection without the final chunk; WebSocket: close with ``drop_close_code``).
        drop_close_code: WebSocket close code of an abrupt end.
        retry_after: ``Retry-After`` header for an error answer (seconds), if any.
    """

    status: int = 200
    error_body: Any = None
    chunk_sizes: Sequence[int] = UNEVEN_CHUNKS
    delay_s: float = 0.0
    hold_after_bytes: int | None = None
    drop_after_bytes: int | None = None
    drop_close_code: int = 1011
    retry_after: int | None = None


@attrs.define
class RecordedRequest:
    """One request the fake received (HTTP, or a WebSocket handshake plus its messages).

    Attributes:
        method: ``POST`` / ``GET``.
        path: URL path, percent-decoded.
        query: query parameters (last value wins).
        headers: request headers, keys lower-cased.
        body: the parsed JSON body (HTTP), else ``None``.
        messages: parsed JSON text messages received (WebSocket), with arrival times.
        rejected: why the fake refused the request (``None``: accepted).
        received_at: ``time.monotonic()`` when the request arrived.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None
    messages: list[dict[str, Any]] = attrs.field(factory=list)
    message_times: list[float] = attrs.field(factory=list)
    rejected: str | None = None
    received_at: float = attrs.field(factory=time.monotonic)


@attrs.define
class Disconnect:
    """The client went away before the end of the audio.

    Attributes:
        request: the request whose stream was cut.
        bytes_sent: audio bytes written before the disconnect was seen.
        at: ``time.monotonic()`` when the fake saw it.
    """

    request: RecordedRequest
    bytes_sent: int
    at: float = attrs.field(factory=time.monotonic)


class FakeTTSServer:
    """Base of the TTS fakes: an aiohttp app on 127.0.0.1:0 with scripted answers.

    Use as ``async with FakeOpenAITTS() as fake: ...`` (or :meth:`start` / :meth:`stop`).
    Queue per-request answers with :meth:`push_plan`; requests beyond the queue get
    :attr:`default_plan`.

    Attributes:
        requests: every request received, in order.
        disconnects: every client disconnect before the end of the audio.
        completed: requests whose audio was streamed to the end.
        first_byte_times: ``time.monotonic()`` just before the first audio byte of each
            stream was written (for the latency benchmark).
    """

    def __init__(self) -> None:
        self.default_plan = StreamPlan()
        self._plans: deque[StreamPlan] = deque()
        self.requests: list[RecordedRequest] = []
        self.disconnects: list[Disconnect] = []
        self.completed = 0
        self.first_byte_times: list[float] = []
        self.audio = b""
        self._released = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0

    # --- life cycle --------------------------------------------------------------------

    def build_app(self) -> web.Application:
        """The aiohttp app with the vendor's routes (subclasses)."""
        raise NotImplementedError

    async def start(self) -> FakeTTSServer:
        """Listen on 127.0.0.1, a free port. Handlers are cancelled when a client
        disconnects, which is how disconnects are seen while the fake waits."""
        self._runner = web.AppRunner(self.build_app(), handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        """Release held streams and shut the server down."""
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTTSServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._port}"

    # --- scripting ---------------------------------------------------------------------

    def push_plan(self, plan: StreamPlan) -> None:
        """Answer the next not yet answered request with ``plan``."""
        self._plans.append(plan)

    def next_plan(self) -> StreamPlan:
        """The plan for the request being answered now."""
        return self._plans.popleft() if self._plans else self.default_plan

    def audio_for_request(self, record: RecordedRequest) -> bytes:
        """The audio body for an accepted HTTP request; ``self.audio`` unless a subclass or
        a test (e.g. a benchmark wanting replies of several lengths) replaces it."""
        return self.audio

    def release(self) -> None:
        """Let held streams (``hold_after_bytes``) send the rest of their audio."""
        self._released.set()

    async def wait_disconnect(self, within_s: float = 10.0) -> Disconnect:
        """Wait until a client disconnect is recorded; return the first one."""
        async with asyncio.timeout(within_s):
            await self._disconnected.wait()
        return self.disconnects[0]

    def record_disconnect(self, request: RecordedRequest, bytes_sent: int) -> None:
        """Note that the client went away after ``bytes_sent`` audio bytes."""
        self.disconnects.append(Disconnect(request, bytes_sent))
        self._disconnected.set()

    async def hold_if_planned(self, plan: StreamPlan, sent: int, held: bool) -> bool:
        """Wait for :meth:`release` once ``sent`` reaches the plan's hold point.

        Returns:
            Whether the stream has now been held (so it is held only once).
        """
        if held or plan.hold_after_bytes is None or sent < plan.hold_after_bytes:
            return held
        await self._released.wait()
        return True

    def reject(self, record: RecordedRequest, status: int, body: Any) -> web.Response:
        """Answer ``status`` with JSON ``body`` and note why on the record."""
        record.rejected = f"{status}: {body}"
        return web.json_response(body, status=status)

    # --- HTTP streaming ----------------------------------------------------------------

    async def stream_http(
        self,
        request: web.Request,
        record: RecordedRequest,
        audio: bytes,
        plan: StreamPlan,
        content_type: str,
    ) -> web.StreamResponse:
        """Stream ``audio`` as a chunked 200 response following ``plan``."""
        response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        sent, held = 0, False
        try:
            for index, chunk in enumerate(chunked(audio, plan.chunk_sizes)):
                held = await self.hold_if_planned(plan, sent, held)
                if index and plan.delay_s:
                    await asyncio.sleep(plan.delay_s)
                if plan.drop_after_bytes is not None and sent + len(chunk) > plan.drop_after_bytes:
                    await response.write(chunk[: plan.drop_after_bytes - sent])
                    # Abrupt end: no terminating zero-length chunk, connection closed.
                    assert request.transport is not None
                    request.transport.close()
                    return response
                if not sent:
                    self.first_byte_times.append(time.monotonic())
                await response.write(chunk)
                sent += len(chunk)
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.record_disconnect(record, sent)
            raise
        self.completed += 1
        return response
