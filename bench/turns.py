"""Conversation turn latency through the real server with the offline providers (Whisper STT,
Piper TTS, scripted responder), printed as numbers (no assertions).

Run: ``uv run python bench/turns.py [--calls 1,2,3,4,6] [--utterances 3] [--turn smart-turn]
[--server preemptive_generation=false]``.

Everything runs in this process as ``voicehost serve`` would (same handler, providers, call
records in a temporary file); callers are the Twilio simulator, speaking Piper-synthesized
sentences as μ-law 8 kHz at real-time pace, with silence on the line between them as a phone
line carries it. Per turn:

* **end of speech → final**: wall time from sending the frame that holds the last speech
  sample (the utterance is trimmed of Piper's trailing silence) to the handler's
  ``on_transcript``. Includes the ``min_silence_ms`` endpointing wait (500 ms by default).
* **final → first audio**: from ``on_transcript`` to the simulator receiving the reply's first
  ``media`` frame (loopback, so within a millisecond of it being sent): responder + Piper time
  to first audio + conversion and framing.
* **sum**: end of caller speech → first bot audio, what the caller hears as the bot's pause.

Then N simultaneous calls (each speaking ``--utterances`` sentences after its greeting) for
each N of ``--calls``, reporting the final-transcript latency p50/p95 per N, and the first N
whose p95 is more than twice the single-call p95. The machine's cores are shared with
whatever else runs; run it on an idle machine for figures worth quoting.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "offline"))

from offline_helpers import CALLER_SENTENCES, synthesize_ulaw, trim_silence
from offline_stack import pct, start_offline_server

from voicehost.conversation import ResponderCallHandler
from voicehost.simulate.caller import CallerLine, Turn, wait_reply
from voicehost.testing import TwilioSimulator

FRAME = 160


class TimedHandler(ResponderCallHandler):
    """The serve handler, noting when each final transcript reaches it (monotonic s)."""

    finals: dict[str, list[float]]

    async def on_transcript(self, call, text):  # type: ignore[no-untyped-def]
        self.finals.setdefault(call.call_sid, []).append(time.monotonic())
        await super().on_transcript(call, text)


async def one_call(
    sim: TwilioSimulator,
    handler: TimedHandler,
    utterances: list[bytes],
    start_delay_s: float,
) -> list[tuple[float, float]]:
    """One call: greeting, then each utterance and its reply. Returns per turn
    ``(end of speech → final ms, final → first audio ms)``; NaN where missing."""
    await asyncio.sleep(start_delay_s)
    call = await sim.start_call()
    t0 = time.monotonic()
    line = CallerLine(call)
    results: list[tuple[float, float]] = []
    try:
        await wait_reply(call, Turn(None), t0, 60.0, lambda _s: None)
        for ulaw in utterances:
            finals_before = len(handler.finals.get(call.call_sid, []))
            line.playing = True
            wall_start = time.monotonic()  # call.play sends frame i at wall_start + i * 20 ms
            try:
                await call.play(ulaw)
            finally:
                line.playing = False
            end_of_speech = wall_start + (math.ceil(len(ulaw) / FRAME) - 1) * 0.02
            turn = Turn("utterance")
            await wait_reply(call, turn, t0, 60.0, lambda _s: None)
            finals = handler.finals.get(call.call_sid, [])
            final_at = finals[finals_before] if len(finals) > finals_before else math.nan
            first_audio = t0 + turn.first_audio_ms / 1000 if turn.first_audio_ms else math.nan
            results.append(((final_at - end_of_speech) * 1000, (first_audio - final_at) * 1000))
            await asyncio.sleep(0.5)
    finally:
        await line.close()
        await call.stop()
    return results


async def round_of(
    base_url: str, handler: TimedHandler, n_calls: int, utterances: list[bytes], per_call: int
) -> list[tuple[float, float]]:
    async with TwilioSimulator(base_url) as sim:
        jobs = []
        for i in range(n_calls):
            mine = [utterances[(i * per_call + k) % len(utterances)] for k in range(per_call)]
            jobs.append(one_call(sim, handler, mine, start_delay_s=i * 0.37))
        per_call_results = await asyncio.gather(*jobs)
    return [turn for result in per_call_results for turn in result]


def summary(label: str, turns: list[tuple[float, float]]) -> tuple[float, float]:
    finals = [a for a, _ in turns if not math.isnan(a)]
    replies = [b for _, b in turns if not math.isnan(b)]
    sums = [a + b for a, b in turns if not (math.isnan(a) or math.isnan(b))]
    missed = sum(1 for a, b in turns if math.isnan(a) or math.isnan(b))
    print(
        f"{label:>8}  turns {len(turns):3d} (missed {missed})  "
        f"speech end→final p50 {pct(finals, 50):6.0f} p95 {pct(finals, 95):6.0f} ms  "
        f"final→first audio p50 {pct(replies, 50):6.0f} p95 {pct(replies, 95):6.0f} ms  "
        f"sum p50 {pct(sums, 50):6.0f} p95 {pct(sums, 95):6.0f} ms",
        flush=True,
    )
    return pct(finals, 50), pct(finals, 95)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", default="1,2,3,4,6", help="simultaneous calls per round")
    parser.add_argument("--utterances", type=int, default=3, help="utterances per call")
    parser.add_argument("--single-turns", type=int, default=8, help="turns of the 1-call run")
    parser.add_argument("--turn", default="", help="[turn] provider, e.g. smart-turn")
    parser.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a [server] key, e.g. --server preemptive_generation=false",
    )
    args = parser.parse_args()
    server_config = {k: v for item in args.server for k, v in tomllib.loads(item).items()}
    counts = [int(n) for n in args.calls.split(",")]

    print(
        f"cpu cores: {os.cpu_count()}; [turn] {args.turn or 'none'}; [server] overrides: "
        f"{server_config or 'none'}; synthesizing {len(CALLER_SENTENCES)} caller sentences"
    )
    utterances = [trim_silence(synthesize_ulaw(s)) for s in CALLER_SENTENCES]
    with tempfile.TemporaryDirectory() as tmp:
        runner, base_url, handler = await start_offline_server(
            Path(tmp) / "bench.db",
            TimedHandler,
            turn=args.turn or None,
            server_config=server_config,
        )
        handler.finals = {}
        try:
            print("warm-up call (model loads) …", flush=True)
            await round_of(base_url, handler, 1, utterances, 1)
            print("\none call, turn by turn:")
            single = await round_of(base_url, handler, 1, utterances, args.single_turns)
            _, base_p95 = summary("1 call", single)
            print("\nsimultaneous calls:")
            knee = None
            for n in counts:
                turns = (
                    single
                    if n == 1
                    else await round_of(base_url, handler, n, utterances, args.utterances)
                )
                _, p95 = summary(f"{n} calls", turns)
                if knee is None and p95 > 2 * base_p95:
                    knee = n
            if knee is None:
                print(f"\nfinal-transcript p95 stayed under 2× the 1-call p95 up to {counts[-1]}")
            else:
                print(f"\nfinal-transcript p95 first exceeds 2× the 1-call p95 at {knee} calls")
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
