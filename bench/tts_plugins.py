"""Host overhead of the cloud TTS plugins on a real call, printed as numbers (no assertions).

Run: ``uv run python bench/tts_plugins.py [--replies 100] [--speech-seconds 30]``.

Three processes, so each figure counts only what it names:

* a **vendor fake** process (``tests/fakes``: OpenAI ``/v1/audio/speech`` streaming PCM16
  24 kHz, or ElevenLabs HTTP / ``stream-input`` streaming μ-law 8 kHz, uneven chunks);
* the **host** process (this one): the real call server (``voicehost.server``) with the plugin
  on its official SDK, ``AudioConverter`` + ``Framer`` + paced playback;
* a **caller** process: the Twilio simulator (``voicehost.testing.twilio``) on the stream.

Figures, per plugin:

* **first byte → first frame (ms)**: from the fake writing a reply's first audio byte to
  the host handing that reply's first 160-byte ``media`` frame to the socket (host overhead:
  HTTP/WebSocket read, SDK, conversion, framing; playback pacing never delays a first frame).
  Also to the simulator receiving it (adds the socket hop). ``--replies`` short replies
  (0.1 s of audio each), each played to its mark before the next; p50 / p99 / max.
* **CPU per minute of speech (s)**: CPU time of the host process while it plays
  ``--speech-seconds`` of audio (real-time paced, in 10 s replies), scaled to 60 s.

All timestamps are ``time.monotonic()`` (CLOCK_MONOTONIC, shared by the processes).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "tests", ROOT / "tests" / "tts"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from fakes.elevenlabs import FakeElevenLabs, known_ulaw  # noqa: E402
from fakes.openai_tts import FakeOpenAITTS  # noqa: E402
from fakes.tts_stream import FakeTTSServer, RecordedRequest, tone_pcm16  # noqa: E402
from tts_call import AUTH_TOKEN, PUBLIC_URL, start_tts_server  # noqa: E402

from voicehost.server import CallHandler  # noqa: E402
from voicehost.testing.twilio import TwilioSimulator  # noqa: E402

SHORT_S = 0.1  # audio of one latency-sample reply
LONG_S = 10.0  # audio of one CPU-phase reply
SHORT_TEXT, LONG_TEXT = "Hi.", "A long reply."

PLUGINS: dict[str, tuple[str, str, dict[str, Any]]] = {
    # label: (vendor fake kind, provider id, extra [tts.<id>] keys)
    "openai": ("openai", "openai", {}),
    "elevenlabs (http)": ("elevenlabs", "elevenlabs", {"voice_id": "voice123"}),
    "elevenlabs (websocket)": (
        "elevenlabs",
        "elevenlabs",
        {"voice_id": "voice123", "mode": "websocket"},
    ),
}


# --- vendor fake process ----------------------------------------------------------------------


def _vendor_process(kind: str, conn: Connection) -> None:
    asyncio.run(_vendor_main(kind, conn))


async def _vendor_main(kind: str, conn: Connection) -> None:
    fake: FakeTTSServer
    if kind == "openai":
        short, long = (tone_pcm16(440.0, s, 24000) for s in (SHORT_S, LONG_S))
        fake = FakeOpenAITTS(api_key="sk-test")
    else:
        short, long = known_ulaw(SHORT_S), known_ulaw(LONG_S)
        el = FakeElevenLabs(api_key="xi-test")
        el.audio_for = lambda text: long if LONG_TEXT in text else short
        fake = el

    def by_text(record: RecordedRequest) -> bytes:
        text = (record.body or {}).get("input") or (record.body or {}).get("text") or ""
        return long if LONG_TEXT in text else short

    fake.audio_for_request = by_text  # type: ignore[method-assign]
    async with fake:
        conn.send(fake.base_url)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        conn.send(list(fake.first_byte_times))


# --- caller (Twilio simulator) process -------------------------------------------------------


def _caller_process(base_url: str, conn: Connection) -> None:
    asyncio.run(_caller_main(base_url, conn))


async def _caller_main(base_url: str, conn: Connection) -> None:
    async with TwilioSimulator(base_url, auth_token=AUTH_TOKEN, public_url=PUBLIC_URL) as sim:
        call = await sim.start_call()
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        frame_times = list(call.frame_times)
        await call.stop()
    conn.send(frame_times)


# --- host process ----------------------------------------------------------------------------


class _BenchHandler(CallHandler):
    def __init__(self) -> None:
        self.call: Any = None
        self.started = asyncio.Event()

    async def on_call_start(self, call: Any) -> None:
        call.playback.frame_times = []
        self.call = call
        self.started.set()


async def _bench_plugin(label: str, replies: int, speech_s: float) -> dict[str, Any]:
    kind, tts_id, extra = PLUGINS[label]
    ctx = mp.get_context("spawn")
    vendor_conn, vendor_end = ctx.Pipe()
    vendor = ctx.Process(target=_vendor_process, args=(kind, vendor_end), daemon=True)
    vendor.start()
    loop = asyncio.get_running_loop()
    base_url = await loop.run_in_executor(None, vendor_conn.recv)

    handler = _BenchHandler()
    server = await start_tts_server(tts_id, {"base_url": base_url, **extra}, handler=handler)
    caller_conn, caller_end = ctx.Pipe()
    caller = ctx.Process(target=_caller_process, args=(server.base_url, caller_end), daemon=True)
    caller.start()
    try:
        await asyncio.wait_for(handler.started.wait(), 60)
        call = handler.call
        frame_times: list[float] = call.playback.frame_times

        # Latency: short replies, each played to its mark before the next.
        first_frames: list[float] = []
        first_frame_index: list[int] = []
        frames_before = 0
        for _ in range(replies):
            index = len(frame_times)
            reply = call.say(SHORT_TEXT)
            await asyncio.wait_for(reply.wait(), 30)
            first_frames.append(frame_times[index])
            first_frame_index.append(frames_before)
            frames_before += reply.frames_sent

        # CPU: long replies, paced in real time.
        cpu_start, wall_start = time.process_time(), time.monotonic()
        long_frames = 0
        for _ in range(max(1, round(speech_s / LONG_S))):
            reply = call.say(LONG_TEXT)
            await asyncio.wait_for(reply.wait(), LONG_S * 3 + 30)
            long_frames += reply.frames_sent
        cpu = time.process_time() - cpu_start
        wall = time.monotonic() - wall_start
    finally:
        caller_conn.send("stop")
        received = await loop.run_in_executor(None, caller_conn.recv)
        vendor_conn.send("report")
        first_bytes = await loop.run_in_executor(None, vendor_conn.recv)
        await server.close()
        caller.join(10)
        vendor.join(10)

    to_send = [(f - b) * 1000 for f, b in zip(first_frames, first_bytes, strict=False)]
    to_receive = [
        (received[i] - b) * 1000
        for i, b in zip(first_frame_index, first_bytes, strict=False)
        if i < len(received)
    ]
    speech = long_frames * 0.02
    return {
        "label": label,
        "send": to_send,
        "receive": to_receive,
        "cpu_per_min": cpu / speech * 60 if speech else float("nan"),
        "speech_s": speech,
        "wall_s": wall,
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _print(result: dict[str, Any]) -> None:
    send, receive = result["send"], result["receive"]
    print(f"{result['label']}")
    for name, values in (("→ frame sent    ", send), ("→ frame received", receive)):
        if values:
            print(
                f"  first byte {name} (ms): p50 {statistics.median(values):6.2f}  "
                f"p99 {_pct(values, 99):6.2f}  max {max(values):6.2f}  (n={len(values)})"
            )
    print(
        f"  host CPU per minute of speech: {result['cpu_per_min']:.2f} s "
        f"({result['speech_s']:.0f} s of speech played in {result['wall_s']:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--replies", type=int, default=100, help="latency samples per plugin")
    parser.add_argument("--speech-seconds", type=float, default=30.0, help="CPU phase length")
    parser.add_argument("--plugin", choices=list(PLUGINS), action="append")
    args = parser.parse_args()
    print(f"cloud TTS plugins: {args.replies} replies of {SHORT_S * 1000:.0f} ms for latency, ")
    print(f"{args.speech_seconds:.0f} s of speech for CPU; {mp.cpu_count()} CPUs")
    for label in args.plugin or list(PLUGINS):
        _print(asyncio.run(_bench_plugin(label, args.replies, args.speech_seconds)))


if __name__ == "__main__":
    main()
