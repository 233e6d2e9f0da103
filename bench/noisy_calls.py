"""Streamed against batch recognition of real human speech on a noisy line, and false turns
on noise alone, through the real server with the offline default stack, printed as numbers
(no assertions).

Run: ``uv run python bench/noisy_calls.py [--fast] [--noise pink,babble] [--snr 10,5]
[--clips big_dog,hts_harvard] [--takes 3] [--noise-only-s 60] [--stt threshold=0.5] [--show]
[--baseline]``. ``--baseline`` builds the segmenter without its noise gate (the VAD alone, as
before issue 16), for before/after figures. ``--takes N`` plays every clip N times, each
with another excerpt of the noise: tiny.en's WER on a noisy sentence moves by a word or two
with the exact noise under it, and the six clips hold 124 words, so one take's WER moves by
about a point per word.

The noisy set is ``tests/offline/noisy_audio.py``: the clips of ``tests/data/human`` mixed
with pink noise, babble (five other talkers) or street noise (buses, a truck, wind) at 20,
10 and 5 dB SNR, the SNR taken over the speech's voiced blocks (sources and licences in
``tests/data/noise/README.md``). Each noisy clip is one call through ``bench/human_calls.py``'s
machinery: the line carries the same noise, at the same level, from the moment the call is
answered (the greeting plays over it), then the clip (1 s of noise, the speech with noise,
1 s of noise), then noise until the bot has answered the last final. Per noise × SNR:

* **streamed WER**: the calls' final transcripts joined, against the references;
* **batch WER**: the same model (``tiny.en``, beam 5) on each clip's speech part with its
  noise, decoded whole at 16 kHz by faster-whisper's own ``transcribe`` with its defaults —
  what the streaming path should reach;
* **end → final p50**: from the last voiced audio (the clean clip's energy analysis) before
  a final's endpoint to the final reaching the handler (ms; with ``--fast`` taken in audio
  time as ``human_calls.py`` does: indicative only);
* **false turns / min** and **barge-ins / min** on ``--noise-only-s`` (60) of the noise alone
  at that SNR's level (against a −20.5 dBFS talker): caller finals that reached the handler,
  and speech starts that cut the bot off (the greeting plays during the first seconds), plus
  the raw ``on_speech_start`` count.

``--session`` skips the server: each clip (after 3 s of its noise alone) goes straight into a
Whisper session, fed as fast as it decodes; the WER figures are then deterministic (no
latency is measured). ``--fast`` plays the clips and the noise-only calls at ``--speed`` ×
real time (the greeting stays real time, as in ``human_calls.py``). tiny.en is touchy: a clip
shifted by a few ms can decode differently, so WER moves by a few points between runs; the
cores are shared with whatever else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "offline"))

from human_audio import batch_transcribe, wer
from human_calls import FRAME, FRAME_MS, Line, TimedHandler, measure, until
from noisy_audio import (
    NOISE_KINDS,
    SNRS_DB,
    NoisyClip,
    bed_ulaw,
    noise_only_ulaw,
    noisy_set,
    stream,
)
from offline_stack import pct, start_offline_server

from voicehost import metrics
from voicehost.simulate.caller import Turn, wait_reply
from voicehost.testing import TwilioSimulator

TAIL_MS = 1000  # noise sent with the clip, at its pace: past the last endpoint
SESSION_LEAD_MS = 3000  # --session: noise alone before each clip, as during the greeting


class NoisyLine(Line):
    """:class:`human_calls.Line` whose idle frames carry ``bed`` (noise, μ-law, looped)
    instead of silence: a noisy line is never quiet."""

    def __init__(self, call: Any, speed: float, bed: bytes) -> None:
        self._bed = bed
        self._bed_at = 0
        super().__init__(call, speed)

    def idle_frame(self) -> bytes:
        """The next 20 ms of the noise bed."""
        if self._bed_at + FRAME > len(self._bed):
            self._bed_at = 0
        frame = self._bed[self._bed_at : self._bed_at + FRAME]
        self._bed_at += FRAME
        return frame


@attrs.define
class Counts:
    """Barge-ins counted through ``voicehost.metrics`` (patched: counted even when disabled)."""

    barge_ins: int = 0

    def install(self) -> None:
        def count() -> None:
            self.barge_ins += 1

        metrics.count_barge_in = count  # type: ignore[assignment]


async def play_noisy(
    sim: TwilioSimulator, handler: TimedHandler, noisy: NoisyClip, *, speed: float, fast: bool
) -> Any:
    """One call: greeting over noise, the noisy clip, noise until the last final is answered.
    Returns ``human_calls.measure``'s ClipResult for the clip's speech."""
    call = await sim.start_call()
    t0 = time.monotonic()
    bed = bed_ulaw(noisy, 30_000)
    line = NoisyLine(call, speed, bed)
    try:
        await wait_reply(call, Turn(None), t0, 60.0, lambda _s: None)
        first = line.enqueue(noisy.ulaw + bed[: 8 * TAIL_MS])
        target = first + math.ceil(len(noisy.ulaw) / FRAME) + TAIL_MS // FRAME_MS
        server_call = handler.calls[call.call_sid]
        await until(lambda: server_call.frames_in >= target, noisy.duration_ms / 1000 + 30)
        stt = server_call.stt
        if stt is not None and hasattr(stt, "wait_idle"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stt.wait_idle(), 30)
            reported = sum(1 for t in stt.final_timings if t.text)
            await until(lambda: len(handler.finals.get(call.call_sid, [])) >= reported, 5)
        finals = handler.finals.get(call.call_sid, [])
        if finals:
            await until(lambda: bool(call.frame_times) and call.frame_times[-1] > finals[-1][0], 15)
        await asyncio.sleep(0.2)
    finally:
        await line.close()
        await call.stop()
    speech_first = first + noisy.lead_ms // FRAME_MS
    return measure(noisy.clip, handler, call, server_call, line, speech_first, fast=fast)


async def play_noise_only(
    sim: TwilioSimulator, handler: TimedHandler, ulaw: bytes, *, speed: float
) -> tuple[int, int]:
    """One call carrying only ``ulaw`` (noise) from the moment it is answered: the greeting
    plays over it in real time, the rest at ``speed``. Returns (finals, speech starts)."""
    call = await sim.start_call()
    t0 = time.monotonic()
    line = NoisyLine(call, speed, ulaw)
    try:
        await wait_reply(call, Turn(None), t0, 60.0, lambda _s: None)
        heard = len(line.sent_at) * FRAME
        line.enqueue(ulaw[heard:])
        target = len(ulaw) // FRAME
        server_call = handler.calls[call.call_sid]
        await until(lambda: server_call.frames_in >= target, len(ulaw) / 8000 + 30)
        stt = server_call.stt
        if stt is not None and hasattr(stt, "wait_idle"):
            # An utterance the noise opened and never ends keeps queueing interim decodes.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stt.wait_idle(), 10)
        await asyncio.sleep(0.5)
    finally:
        await line.close()
        await call.stop()
    finals = len(handler.finals.get(call.call_sid, []))
    return finals, len(handler.starts.get(call.call_sid, []))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="play faster than real time")
    parser.add_argument("--speed", type=float, default=4.0, help="× real time with --fast")
    parser.add_argument("--noise", default=",".join(NOISE_KINDS), help="noise kinds")
    parser.add_argument("--snr", default=",".join(f"{s:g}" for s in SNRS_DB), help="SNRs, dB")
    parser.add_argument("--clips", default="", help="comma-separated clip names (default all)")
    parser.add_argument("--takes", type=int, default=1, help="noise excerpts per clip")
    parser.add_argument("--noise-only-s", type=float, default=60.0, help="0: skip")
    parser.add_argument("--show", action="store_true", help="print each call's transcripts")
    parser.add_argument("--stt", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--baseline", action="store_true", help="the segmenter without its noise gate (VAD only)"
    )
    parser.add_argument(
        "--session",
        action="store_true",
        help="feed each clip straight into a Whisper session (no server, no timing: WER only)",
    )
    return parser.parse_args()


async def main() -> None:
    args = parse_args()
    stt_config = {k: v for item in args.stt for k, v in tomllib.loads(item).items()}
    # the noise gate as the shipped plugins.toml has it; --baseline: the VAD alone
    stt_config.setdefault("noise_gate", not args.baseline)
    speed = args.speed if args.fast else 1.0
    kinds = tuple(k for k in args.noise.split(",") if k)
    snrs = tuple(float(s) for s in args.snr.split(",") if s)
    names = tuple(n for n in args.clips.split(",") if n)
    noisy = noisy_set(kinds, snrs, names, takes=args.takes)
    print(
        f"cpu cores: {os.cpu_count()}; {len(noisy)} noisy clips at {speed:g}× real time; "
        f"[stt.whisper] overrides: {stt_config or 'none'}"
        + ("; baseline (no noise gate)" if args.baseline else "")
    )
    if args.session:
        await session_rows(noisy, kinds, snrs, stt_config, args)
        return
    counts = Counts()
    counts.install()
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        runner, base_url, handler = await start_offline_server(
            Path(tmp) / "bench.db", TimedHandler, stt_config
        )
        handler.calls, handler.finals, handler.starts = {}, {}, {}
        try:
            async with TwilioSimulator(base_url, speed=speed) as sim:
                for kind in kinds:
                    for snr in snrs:
                        group = [n for n in noisy if n.kind == kind and n.snr_db == snr]
                        rows.append(await run_group(sim, handler, counts, group, args, speed))
        finally:
            await runner.cleanup()
    print(
        f"\n{'noise':<8}{'SNR':>5}  {'streamed':>8}  {'batch':>6}  {'gap':>6}  "
        f"{'end→final p50':>13}  {'false turns/min':>15}  {'barge-ins/min':>13}  {'starts/min':>10}"
    )
    print("\n".join(rows))


async def run_group(
    sim: TwilioSimulator,
    handler: TimedHandler,
    counts: Counts,
    group: list[NoisyClip],
    args: argparse.Namespace,
    speed: float,
) -> str:
    """Play one noise × SNR group (its clips, then the noise alone); its table row."""
    kind, snr = group[0].kind, group[0].snr_db
    streamed, batch, latencies = [], [], []
    for noisy in group:
        print(f"  {noisy.name} ({noisy.duration_ms / 1000:.1f} s) …", flush=True)
        result = await play_noisy(sim, handler, noisy, speed=speed, fast=args.fast)
        text = " ".join(result.finals)
        decoded = await asyncio.to_thread(batch_transcribe, noisy.speech_ulaw)
        streamed.append(text)
        batch.append(decoded)
        latencies += [v for v in result.end_to_final if not math.isnan(v)]
        if args.show:
            print(f"      streamed {wer([noisy.reference], [text]) * 100:5.1f}: {text}")
            print(f"      batch    {wer([noisy.reference], [decoded]) * 100:5.1f}: {decoded}")
    references = [n.reference for n in group]
    s_wer, b_wer = wer(references, streamed) * 100, wer(references, batch) * 100
    false_turns = barge_ins = starts = math.nan
    if args.noise_only_s > 0:
        ms = int(args.noise_only_s * 1000)
        before = counts.barge_ins
        print(f"  {kind} alone at {snr:g} dB ({ms / 1000:.0f} s) …", flush=True)
        finals, raw_starts = await play_noise_only(
            sim, handler, noise_only_ulaw(kind, ms, snr, offset=104_729), speed=speed
        )
        minutes = ms / 60_000
        false_turns = finals / minutes
        barge_ins = (counts.barge_ins - before) / minutes
        starts = raw_starts / minutes
    return (
        f"{kind:<8}{snr:>5g}  {s_wer:8.1f}  {b_wer:6.1f}  {s_wer - b_wer:+6.1f}  "
        f"{pct(latencies, 50):13.0f}  {false_turns:15.1f}  {barge_ins:13.1f}  {starts:10.1f}"
    )


async def session_rows(
    noisy: list[NoisyClip],
    kinds: tuple[str, ...],
    snrs: tuple[float, ...],
    stt_config: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    """``--session``: each noisy clip, after :data:`SESSION_LEAD_MS` of its noise alone (the
    greeting), fed straight into a fresh Whisper session as fast as it decodes
    (``noisy_audio.stream``: the session decides in audio time, so the finals are a live
    call's, and nothing depends on the machine's load); interim transcripts off. Prints
    streamed and batch WER per noise × SNR, and the finals and speech starts of
    ``--noise-only-s`` of the noise alone."""
    print(f"{'noise':<8}{'SNR':>5}  {'streamed':>8}  {'batch':>6}  {'gap':>6}  noise alone")
    config = {"partial_interval_ms": 0, **stt_config}
    for kind in kinds:
        for snr in snrs:
            group = [n for n in noisy if n.kind == kind and n.snr_db == snr]
            references, streamed, batch = [], [], []
            for clip in group:
                result = await stream(bed_ulaw(clip, SESSION_LEAD_MS) + clip.ulaw, **config)
                references.append(clip.reference)
                streamed.append(result.text)
                batch.append(await asyncio.to_thread(batch_transcribe, clip.speech_ulaw))
                if args.show:
                    print(f"      {clip.name}: {result.finals} | batch: {batch[-1]}")
            alone = ""
            if args.noise_only_s > 0:
                ms = int(args.noise_only_s * 1000)
                only = await stream(noise_only_ulaw(kind, ms, snr, offset=104_729), **config)
                alone = f"{len(only.finals)} finals, {len(only.starts_ms)} starts in {ms // 1000} s"
            s_wer, b_wer = wer(references, streamed) * 100, wer(references, batch) * 100
            print(
                f"{kind:<8}{snr:>5g}  {s_wer:8.1f}  {b_wer:6.1f}  {s_wer - b_wer:+6.1f}  {alone}",
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())
