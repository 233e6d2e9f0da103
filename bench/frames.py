"""Frame throughput and added latency of the call server (one core, one event loop).

Measures, with fake providers (no vendor, no model) so only voicehost's own work counts:

* inbound:  a Twilio ``media`` text frame → parse, base64-decode, (convert) → STT
  ``send_audio``; frames/s through ``MediaStream._on_text`` and the latency it adds per frame;
* outbound: TTS bytes → (convert) → 160-byte frames → ``media`` JSON → the socket writer,
  with the pacing sleep replaced by a virtual clock (the non-sleeping path); frames/s and
  the latency from a TTS chunk to its frame reaching the writer;
* over a real loopback WebSocket (aiohttp server + the Twilio simulator in one process):
  inbound frames/s and the client-send → ``send_audio`` latency.

Run: ``uv run python bench/frames.py [--frames N]``. Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import time
from types import SimpleNamespace
from typing import Any

from aiohttp.test_utils import TestServer

from voicehost.contracts import (
    MULAW_8K,
    PCM16_16K,
    PCM16_24K,
    AudioFormat,
    SpeechProvider,
    TranscriptionProvider,
    TranscriptionRequest,
    TranscriptionSession,
)
from voicehost.server import Binding, CallHandler, ServerSettings, build_app
from voicehost.server.call import Call
from voicehost.server.media_stream import MediaStream
from voicehost.server.outbound import OutboundChannel
from voicehost.server.playback import Playback
from voicehost.testing.providers import tone
from voicehost.testing.twilio import TwilioSimulator


class CountingSession(TranscriptionSession):
    def __init__(self) -> None:
        self.frames = 0
        self.arrivals: list[float] = []

    async def connect(self) -> None:
        return None

    def send_audio(self, audio: bytes) -> None:
        self.frames += 1
        self.arrivals.append(time.perf_counter())

    async def close(self) -> None:
        return None

    @property
    def connected(self) -> bool:
        return True


class CountingStt(TranscriptionProvider):
    id = "bench"

    def __init__(self, fmt: AudioFormat) -> None:
        self.input_formats = (fmt,)  # type: ignore[misc]
        self.sessions: list[CountingSession] = []

    def create_session(self, request: TranscriptionRequest) -> CountingSession:
        session = CountingSession()
        self.sessions.append(session)
        return session


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) in microseconds."""
    ordered = sorted(samples)
    return (
        statistics.median(ordered) * 1e6,
        ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6,
    )


# --- inbound --------------------------------------------------------------------------------


async def bench_inbound(stt_format: AudioFormat, n: int) -> tuple[float, float, float]:
    provider = CountingStt(stt_format)
    server = SimpleNamespace(settings=ServerSettings())
    request = SimpleNamespace(remote="127.0.0.1", transport=None)
    stream = MediaStream(server, request, SimpleNamespace())  # type: ignore[arg-type]
    channel = OutboundChannel(_discard, lambda: 0, 1 << 30, lambda _n: None)
    stream.call = Call(
        call_sid="CA" + "0" * 32,
        stream_sid="MZ" + "0" * 32,
        playback=Playback(channel, "MZ", None),
        handler=CallHandler(),
        request_close=lambda _c, _m: None,
        stt_provider=provider,
    )
    stream.call.start()
    await asyncio.sleep(0)
    session = provider.sessions[0]
    audio = tone(n / 50)
    messages = [
        json.dumps(
            {
                "event": "media",
                "sequenceNumber": str(i + 2),
                "media": {
                    "track": "inbound",
                    "chunk": str(i + 1),
                    "timestamp": str(i * 20),
                    "payload": base64.b64encode(audio[i * 160 : (i + 1) * 160]).decode(),
                },
                "streamSid": "MZ" + "0" * 32,
            }
        )
        for i in range(n)
    ]
    latencies = []
    start = time.perf_counter()
    for message in messages:
        t = time.perf_counter()
        before = session.frames
        await stream._on_text(message)
        if session.frames > before:  # the resampler may hold the first frame back
            latencies.append(session.arrivals[-1] - t)
    elapsed = time.perf_counter() - start
    assert session.frames > 0
    await stream.call.end("stop")
    return (n / elapsed, *percentiles(latencies))


async def _discard(_text: str) -> None:
    return None


# --- outbound -------------------------------------------------------------------------------


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += delay  # the non-sleeping path: pacing decided, no real wait
        await asyncio.sleep(0)  # but let the socket writer run, as a real sleep would


class ChunkedTts(SpeechProvider):
    """Yields ``audio`` in ``chunk`` byte pieces, stamping when each was yielded."""

    id = "bench"

    def __init__(self, fmt: AudioFormat, audio: bytes, chunk: int) -> None:
        self.output_formats = (fmt,)  # type: ignore[misc]
        self.audio = audio
        self.chunk = chunk
        self.yielded: list[float] = []

    async def synthesize(self, text: str, config: Any):  # type: ignore[override]
        for i in range(0, len(self.audio), self.chunk):
            self.yielded.append(time.perf_counter())
            yield self.audio[i : i + self.chunk]


async def bench_outbound(tts_format: AudioFormat, n: int) -> tuple[float, float, float]:
    seconds = n / 50
    audio = tone(seconds, tts_format)
    chunk = tts_format.bytes_for_ms(20)  # one frame's worth per chunk: latency per frame
    provider = ChunkedTts(tts_format, audio, chunk)
    written: list[float] = []

    async def write(_text: str) -> None:
        written.append(time.perf_counter())

    channel = OutboundChannel(write, lambda: 0, 1 << 40, lambda _n: None)
    channel.start()
    clock = VirtualClock()
    playback = Playback(channel, "MZ" + "0" * 32, provider, {}, clock=clock, sleep=clock.sleep)
    start = time.perf_counter()
    reply = playback.say("bench")
    while len(written) < n:  # noqa: ASYNC110 - busy-yield so timing is pure work
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - start
    k = min(len(provider.yielded), len(written))
    latencies = [w - y for y, w in zip(provider.yielded[:k], written[:k], strict=True)]
    playback.on_mark(reply.mark_name)
    await playback.close()
    await channel.close()
    return (n / elapsed, *percentiles(latencies))


# --- over a real WebSocket ------------------------------------------------------------------


async def bench_websocket(n: int, paced: bool) -> tuple[float, float, float]:
    """Burst ``n`` frames (throughput), or send them at 5x real time (latency unqueued)."""
    provider = CountingStt(MULAW_8K)
    app = build_app(ServerSettings(), stt=Binding(provider, {}))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    frame = tone(0.02)
    try:
        async with TwilioSimulator(base) as sim:
            call = await sim.start_call()
            while not provider.sessions:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
            session = provider.sessions[0]
            sent: list[float] = []
            start = time.perf_counter()
            for i in range(n):
                if paced:
                    delay = start + i * 0.004 - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                sent.append(time.perf_counter())
                await call.send_media(frame)
            while session.frames < n:  # noqa: ASYNC110
                await asyncio.sleep(0.0005)
            elapsed = time.perf_counter() - start
            await call.stop()
        latencies = [a - s for s, a in zip(sent, session.arrivals, strict=True)]
        return (n / elapsed, *percentiles(latencies))
    finally:
        await server.close()


async def main(n: int) -> None:
    rows = [
        ("in:  media → send_audio, μ-law pass-through", await bench_inbound(MULAW_8K, n)),
        ("in:  media → send_audio, → PCM16 16 kHz", await bench_inbound(PCM16_16K, n)),
        ("out: TTS μ-law 8 kHz → paced media", await bench_outbound(MULAW_8K, n)),
        ("out: TTS PCM16 24 kHz → paced media", await bench_outbound(PCM16_24K, n)),
        ("ws:  simulator → server → send_audio, burst", await bench_websocket(n, False)),
        ("ws:  same, 5x real time (latency unqueued)", await bench_websocket(min(n, 1000), True)),
    ]
    print(f"{n} frames of 20 ms each; one event loop, one core")
    print(f"{'path':<50} {'frames/s':>10} {'x realtime':>11} {'p50 µs':>8} {'p99 µs':>8}")
    for name, (fps, p50, p99) in rows:
        if "burst" in name:  # latency of a burst is queueing, not added latency
            print(f"{name:<50} {fps:>10,.0f} {fps / 50:>11,.0f} {'-':>8} {'-':>8}")
        elif "real time" in name:  # the rate is the pacing, not a capacity
            print(f"{name:<50} {'-':>10} {'-':>11} {p50:>8.1f} {p99:>8.1f}")
        else:
            print(f"{name:<50} {fps:>10,.0f} {fps / 50:>11,.0f} {p50:>8.1f} {p99:>8.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000, help="frames per measurement")
    asyncio.run(main(parser.parse_args().frames))
