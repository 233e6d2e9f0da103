"""Host overhead of the cloud STT plugins with many simultaneous calls, printed as numbers
(no assertions).

Run: ``uv run python bench/stt_plugins.py [--calls 50] [--seconds 30] [--speed 2]``.

Two processes, so each figure counts only what it names:

* a **vendor fake** process (``tests/fakes``: the OpenAI Realtime transcription fake or the
  Deepgram live fake) recognising known μ-law utterances;
* the **host** process (this one): ``--calls`` sessions of the plugin on its official SDK,
  driven through the ``TranscriptionSession`` contract exactly as the call server drives them
  (``send_audio`` per 20 ms Twilio frame, callbacks into the app), each fed ``--seconds`` of
  caller audio (utterances of 0.6 s, each followed by 0.9 s of silence) at ``--speed`` × real
  time, all calls at once (their starts spread over one 1.5 s utterance cycle).

Figures, per plugin:

* **final → on_transcript (ms)**: from the fake writing an utterance's final result (OpenAI
  ``…transcription.completed``; Deepgram the ``Results`` with ``speech_final``) to the app's
  ``on_transcript`` callback in the host: socket read, SDK parsing, the plugin's dispatch.
  p50 / p99 / max over every utterance of every call. Both timestamps are ``time.monotonic()``
  (CLOCK_MONOTONIC, shared by the processes).
* **CPU per call-minute (ms)**: ``time.process_time()`` of the host process over the streaming
  phase, divided by the call-minutes of audio streamed. A baseline run (the same feeding loop
  into a session that drops the audio) is subtracted, so the net figure is the plugin's:
  its queue and pump, the SDK's encoding and socket writes, and reading results.
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
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from fakes.deepgram import FakeDeepgram  # noqa: E402
from fakes.openai_realtime import FakeOpenAIRealtime  # noqa: E402
from fakes.stt_audio import FRAME_BYTES, silence, utterance  # noqa: E402

from voicehost import TranscriptionCallbacks, TranscriptionRequest  # noqa: E402

UTTERANCE_MS = 600
GAP_MS = 900
KEYS = {"openai": "sk-bench", "deepgram": "dg-bench"}


def script(call: int, seconds: float) -> tuple[bytes, list[tuple[bytes, str]]]:
    """One call's caller audio and its known utterances (distinct in every call)."""
    cycle_ms = UTTERANCE_MS + GAP_MS
    clips = [
        (utterance(call * 1000 + i, UTTERANCE_MS), f"call {call} utterance {i}")
        for i in range(int(seconds * 1000) // cycle_ms)
    ]
    audio = b"".join(clip + silence(GAP_MS) for clip, _ in clips)
    return audio, clips


# --- the vendor fake process -----------------------------------------------------------------


def run_fake(vendor: str, calls: int, seconds: float, pipe: Connection) -> None:
    asyncio.run(_serve_fake(vendor, calls, seconds, pipe))


async def _serve_fake(vendor: str, calls: int, seconds: float, pipe: Connection) -> None:
    fake = FakeOpenAIRealtime(KEYS[vendor]) if vendor == "openai" else FakeDeepgram(KEYS[vendor])
    for call in range(calls):
        for clip, text in script(call, seconds)[1]:
            fake.utterances.add(clip, text)
    async with fake:
        pipe.send(fake.base_url)
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "done"
        pipe.send(fake.finals_sent)


# --- the host process ------------------------------------------------------------------------


def make_provider(vendor: str, base_url: str) -> tuple[Any, Any]:
    """The vendor's provider and its parsed config (defaults, pointed at the fake), with the
    SDK client built as ``serve`` builds it before listening (``preload``)."""
    if vendor == "openai":
        from voicehost_openai_stt import OpenAISTTConfig, OpenAITranscriptionProvider

        provider: Any = OpenAITranscriptionProvider()
        config: Any = OpenAISTTConfig(api_key=KEYS[vendor], base_url=base_url)
    else:
        from voicehost_deepgram_stt import DeepgramSTTConfig, DeepgramTranscriptionProvider

        provider = DeepgramTranscriptionProvider()
        config = DeepgramSTTConfig(api_key=KEYS[vendor], base_url=base_url)
    provider.preload(config)
    return provider, config


class NullSession:
    """The baseline: takes audio and drops it."""

    connected = True

    async def connect(self) -> None:
        return None

    def send_audio(self, audio: bytes) -> None:
        return None

    async def close(self) -> None:
        return None


async def feed(session: Any, audio: bytes, speed: float, offset_s: float) -> None:
    """After ``offset_s``, send 20 ms frames on an absolute schedule, ``speed`` × real time."""
    loop = asyncio.get_running_loop()
    t0 = loop.time() + offset_s
    step = 0.02 / speed
    for n, i in enumerate(range(0, len(audio), FRAME_BYTES)):
        delay = t0 + n * step - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        session.send_audio(audio[i : i + FRAME_BYTES])


async def run_calls(vendor: str | None, base_url: str, args: argparse.Namespace) -> dict:
    """Run every call; CPU seconds of the streaming phase and the transcripts' arrival times."""
    arrived: dict[str, float] = {}
    expected = 0
    sessions = []
    scripts = [script(call, args.seconds) for call in range(args.calls)]
    done = asyncio.Event()

    def on_transcript(text: str) -> None:
        arrived[text] = time.monotonic()
        if len(arrived) >= expected:
            done.set()

    if vendor is None:
        sessions = [NullSession() for _ in scripts]
    else:
        provider, config = make_provider(vendor, base_url)
        callbacks = TranscriptionCallbacks(on_transcript=on_transcript)
        for call in range(args.calls):
            request = TranscriptionRequest(config=config, callbacks=callbacks, call_sid=f"CA{call}")
            sessions.append(provider.create_session(request))
        await asyncio.gather(*(s.connect() for s in sessions))
        expected = sum(len(clips) for _, clips in scripts)

    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    # Calls start spread over one utterance cycle, as real calls are not in lockstep.
    cycle_s = (UTTERANCE_MS + GAP_MS) / 1000 / args.speed
    await asyncio.gather(
        *(
            feed(session, audio, args.speed, cycle_s * n / args.calls)
            for n, (session, (audio, _)) in enumerate(zip(sessions, scripts, strict=True))
        )
    )
    if vendor is not None:
        try:
            await asyncio.wait_for(done.wait(), 30)
        except TimeoutError:
            print(f"  warning: {expected - len(arrived)} transcripts missing", file=sys.stderr)
    await asyncio.gather(*(s.close() for s in sessions))
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    return {"cpu": cpu, "wall": wall, "arrived": arrived}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench(vendor: str, args: argparse.Namespace, baseline_cpu: float) -> None:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=run_fake, args=(vendor, args.calls, args.seconds, child))
    proc.start()
    base_url = parent.recv()
    result = asyncio.run(run_calls(vendor, base_url, args))
    parent.send("done")
    finals_sent: list[tuple[float, str]] = parent.recv()
    proc.join()

    sent = {text: t for t, text in finals_sent}
    latencies = [
        (result["arrived"][text] - t) * 1000
        for text, t in sent.items()
        if text in result["arrived"]
    ]
    call_minutes = args.calls * args.seconds / 60
    net = result["cpu"] - baseline_cpu
    print(f"{vendor}:")
    print(
        f"  final → on_transcript: n={len(latencies)}  p50 {percentile(latencies, 0.5):.2f} ms"
        f"  p99 {percentile(latencies, 0.99):.2f} ms  max {max(latencies):.2f} ms"
        f"  (mean {statistics.fmean(latencies):.2f} ms)"
    )
    print(
        f"  CPU: {result['cpu']:.2f} s over {call_minutes:.1f} call-minutes"
        f" (wall {result['wall']:.1f} s) → {result['cpu'] / call_minutes * 1000:.0f} ms per"
        f" call-minute; net of the feeding baseline {net / call_minutes * 1000:.0f} ms per"
        f" call-minute ({net / (call_minutes * 60) * 100:.2f} % of a core per call)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50, help="simultaneous calls")
    parser.add_argument("--seconds", type=float, default=30.0, help="audio per call (s)")
    parser.add_argument("--speed", type=float, default=2.0, help="× real time")
    parser.add_argument("--plugins", nargs="+", default=["openai", "deepgram"])
    args = parser.parse_args()
    print(
        f"{args.calls} simultaneous calls × {args.seconds:.0f} s of μ-law each at"
        f" {args.speed:g}× real time ({UTTERANCE_MS} ms utterances, {GAP_MS} ms gaps)"
    )
    baseline = asyncio.run(run_calls(None, "", args))
    print(
        f"baseline (feeding loop only): {baseline['cpu']:.2f} s CPU,"
        f" {baseline['cpu'] / (args.calls * args.seconds / 60) * 1000:.0f} ms per call-minute"
    )
    for vendor in args.plugins:
        bench(vendor, args, baseline["cpu"])


if __name__ == "__main__":
    main()
