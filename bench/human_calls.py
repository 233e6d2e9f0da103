"""Turn latency and accuracy on real human recordings played as phone calls through the real
server with the offline default stack (Whisper STT, Piper TTS, scripted responder), printed
as numbers (no assertions).

Run: ``uv run python bench/human_calls.py [--fast] [--clips big_dog,hts_harvard] [--show]
[--stt threshold=0.5] [--server preemptive_generation=false] [--turn smart-turn] [--calls 3]``.

The clips are ``tests/data/human`` (codec2's test recordings: read sentences, an amateur-radio
monologue; see its README). Everything runs in this process as ``voicehost serve`` would (same
handler, providers, call records in a temporary file). One call per clip, one after another:
the Twilio simulator places it, the caller line carries μ-law silence every 20 ms while the
greeting plays (as a phone line does), then the clip, then silence until the bot has answered
the last final transcript. Each clip is judged against its own energy (``human_audio.Energy``:
where the caller is audibly speaking, measured without the VAD). Per utterance (a final
transcript):

* **end → final**: from sending the frame holding the last voiced audio before the final's
  endpoint to the handler's ``on_transcript``. Includes the ``min_silence_ms`` endpointing
  wait (500 ms by default).
* **final → audio**: from ``on_transcript`` to the simulator receiving the reply's first
  ``media`` frame (loopback: within a millisecond of it being sent).
* **sum**: end of caller speech → first bot audio, the pause the caller hears.
* **onset → start**: from sending the frame holding the first voiced audio of a stretch of
  speech to the handler's ``on_speech_start`` (barge-in fires there).

With an end-of-turn detector (``--turn smart-turn``: ``[turn] provider``), the handler gets
one transcript per *turn*, the session's finals joined; each is timed from the end of the
speech before its last final. **cut-ins / min**: on the monologue clips, replies started while
the caller was still talking (a transcript handed to the handler before the clip's last
voiced audio was sent), per minute of monologue, and of those the ones **inside an unfinished
sentence** (the words handed over so far do not end within one word of a sentence end of the
clip's reference: a reply after a whole Harvard sentence is not one). ``--calls N`` plays
each clip on N simultaneous calls (latency under load).

p50 / p95 per clip and over all utterances, plus the word error rate of the call's joined
final transcripts against the clip's reference; ``--show`` adds each final and where its
time went (energy end, VAD speech end, endpoint, decode start, queueing, inference).

``--fast`` plays the clip (and the second of silence after it) at ``--speed`` × real time
(default 4) for a quick run; the silence while the greeting plays stays real-time, so the VAD
hears the same lead-in as in a real call. Accuracy figures are comparable, but wall-clock
latency means little then, so end → final is taken from the session's own audio-time timings
(the endpoint wait plus queueing and inference, as if the audio had come in real time; the
queueing is inflated by the faster feed) and onset → start in audio time; final → audio stays
wall-clock. tiny.en is touchy: a clip shifted by a few ms on the line can decode differently,
so WER varies by a few points between runs. The machine's cores are shared with whatever else
runs: run it on an idle machine for figures worth quoting.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "offline"))

from human_audio import Clip, load_clips, wer
from offline_helpers import normalise
from offline_stack import pct, start_offline_server

from voicehost.conversation import ResponderCallHandler
from voicehost.simulate.caller import Turn, wait_reply
from voicehost.testing import SimulatedCall, TwilioSimulator
from voicehost.text import split_sentences

FRAME = 160  # bytes of one 20 ms μ-law frame
FRAME_MS = 20
SILENCE = b"\xff" * FRAME
TAIL_MS = 1000  # line silence sent with the clip, at its pace: past the last endpoint
MIN_PAUSE_MS = 200  # energy gaps shorter than this do not start a new stretch of speech


def mid_sentence(reference: str, released: list[str]) -> int:
    """How many of the turns ``released`` in order (from the start of a clip) end inside a
    sentence of ``reference``: their words so far are not within one word of a sentence end
    (the reference's sentences by :func:`voicehost.text.split_sentences`)."""
    done, rest = split_sentences(reference)
    ends, words = [], 0
    for sentence in [*done, rest]:
        words += len(normalise(sentence).split())
        ends.append(words)
    count, said = 0, 0
    for text in released:
        said += len(normalise(text).split())
        if min(abs(said - end) for end in ends) > 1:
            count += 1
    return count


class TimedHandler(ResponderCallHandler):
    """The serve handler, noting each call, final transcript and speech start (monotonic s)."""

    calls: dict[str, Any]
    finals: dict[str, list[tuple[float, str]]]
    starts: dict[str, list[float]]

    async def on_call_start(self, call):  # type: ignore[no-untyped-def]
        self.calls[call.call_sid] = call
        await super().on_call_start(call)

    async def on_transcript(self, call, text):  # type: ignore[no-untyped-def]
        self.finals.setdefault(call.call_sid, []).append((time.monotonic(), text))
        await super().on_transcript(call, text)

    async def on_speech_start(self, call):  # type: ignore[no-untyped-def]
        self.starts.setdefault(call.call_sid, []).append(time.monotonic())
        await super().on_speech_start(call)


class Line:
    """The caller's side of the line: one 20 ms frame at a time, the queued audio when there
    is some (every ``0.02 / speed`` s), silence otherwise (every 0.02 s, as a phone line
    carries it, so a fast run hears as much silence during the greeting as a real one);
    ``sent_at[i]`` is when frame ``i`` left."""

    def __init__(self, call: SimulatedCall, speed: float) -> None:
        self.call = call
        self.speed = speed
        self.sent_at: list[float] = []
        self._queue = bytearray()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def enqueue(self, ulaw: bytes) -> int:
        """Queue caller audio; returns the index of the frame it starts in."""
        start = len(self.sent_at) + math.ceil(len(self._queue) / FRAME)
        self._queue += ulaw.ljust(math.ceil(len(ulaw) / FRAME) * FRAME, b"\xff")
        return start

    def idle_frame(self) -> bytes:
        """What the line carries when the caller says nothing: 20 ms of μ-law silence."""
        return SILENCE

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while not self.call.ws.closed:
            frame = bytes(self._queue[:FRAME])
            del self._queue[:FRAME]
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.call.send_media(frame or self.idle_frame())
            self.sent_at.append(time.monotonic())
            due += FRAME_MS / 1000 / (self.speed if frame else 1.0)
            await asyncio.sleep(max(0.0, due - loop.time()))

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@attrs.define
class ClipResult:
    """Per-utterance figures (ms; NaN where not measurable) and the transcripts of one call."""

    clip: Clip
    finals: list[str]
    end_to_final: list[float] = attrs.field(factory=list)
    final_to_audio: list[float] = attrs.field(factory=list)
    onset_to_start: list[float] = attrs.field(factory=list)
    details: list[str] = attrs.field(factory=list)  # per final: where its time went
    cut_ins: int = 0  # replies started while a monologue was still going
    mid_sentence: int = 0  # ... of which inside an unfinished sentence of the reference
    turn_decisions: list[tuple[float, bool, float]] = attrs.field(factory=list)

    @property
    def sums(self) -> list[float]:
        return [a + b for a, b in zip(self.end_to_final, self.final_to_audio, strict=True)]

    @property
    def wer(self) -> float:
        return wer([self.clip.reference], [" ".join(self.finals)])


async def play_clip(
    sim: TwilioSimulator, handler: TimedHandler, clip: Clip, *, speed: float, fast: bool
) -> ClipResult:
    """One call: greeting, the clip, silence until the last final has been answered."""
    call = await sim.start_call()
    t0 = time.monotonic()
    line = Line(call, speed)
    try:
        await wait_reply(call, Turn(None), t0, 60.0, lambda _s: None)  # the greeting plays
        first = line.enqueue(clip.ulaw + SILENCE * (TAIL_MS // FRAME_MS))
        # The clip and the silence after it (past any endpoint) have reached the server's
        # STT session …
        target = first + math.ceil(len(clip.ulaw) / FRAME) + TAIL_MS // FRAME_MS
        server_call = handler.calls[call.call_sid]
        await until(lambda: server_call.frames_in >= target, clip.duration_ms / 1000 + 30)
        stt = server_call.stt
        if stt is not None and hasattr(stt, "wait_idle"):  # WhisperSession's extra
            await stt.wait_idle()  # every final has been decoded and reported …
            reported = sum(1 for t in stt.final_timings if t.text)
            # … and has reached the handler (its own task)
            await until(lambda: len(handler.finals.get(call.call_sid, [])) >= reported, 5)
        finals = handler.finals.get(call.call_sid, [])
        if finals:  # the reply to the last final starts
            await until(lambda: bool(call.frame_times) and call.frame_times[-1] > finals[-1][0], 15)
        await asyncio.sleep(0.2)
    finally:
        await line.close()
        await call.stop()
    return measure(clip, handler, call, server_call, line, first, fast=fast)


async def until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``predicate`` every 20 ms until it holds (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def measure(
    clip: Clip,
    handler: TimedHandler,
    call: SimulatedCall,
    server_call: Any,
    line: Line,
    first: int,
    *,
    fast: bool,
) -> ClipResult:
    """Per-utterance figures of one played clip (see the module docstring)."""
    finals = handler.finals.get(call.call_sid, [])
    timings = group_timings(
        [t for t in getattr(server_call.stt, "final_timings", []) if t.text],
        [text for _, text in finals],
    )
    result = ClipResult(clip, [text for _, text in finals])
    turns = getattr(getattr(server_call, "transcription", None), "turns", None)
    if turns is not None:
        result.turn_decisions = list(turns.decisions)
    clip_start_ms = first * FRAME_MS

    def sent(clip_ms: float) -> float:
        """When the frame holding clip time ``clip_ms`` was sent (monotonic s)."""
        return line.sent_at[first + int(clip_ms // FRAME_MS)]

    if clip.kind == "monologue":
        voiced_end = clip.energy.last_end_before(clip.duration_ms)
        last_voiced = sent(voiced_end - 1) if voiced_end else line.sent_at[-1]
        early = [text for arrived, text in finals if arrived < last_voiced]
        result.cut_ins = len(early)
        result.mid_sentence = mid_sentence(clip.reference, early)

    for (arrived, _text), timing in zip(finals, timings, strict=False):
        end = clip.energy.last_end_before(timing.endpoint_ms - clip_start_ms)
        how = "speculative" if timing.speculative else "at endpoint"
        result.details.append(
            f"energy end {end} ms, VAD speech end {timing.speech_end_ms - clip_start_ms}, "
            f"endpoint {timing.endpoint_ms - clip_start_ms}, decode queued at "
            f"{timing.submitted_ms - clip_start_ms} ({how}), "
            f"waited {timing.queued_ms:.0f} ms, inference {timing.inference_ms:.0f} ms"
        )
        if end is None:
            result.end_to_final.append(math.nan)
        elif fast:  # the audio-time model: endpoint wait, then queueing and inference
            decoded = timing.submitted_ms + timing.queued_ms + timing.inference_ms
            result.end_to_final.append(max(timing.endpoint_ms, decoded) - clip_start_ms - end)
        else:
            result.end_to_final.append((arrived - sent(end - 1)) * 1000)
        replies = [t for t in call.frame_times if t > arrived]
        result.final_to_audio.append((replies[0] - arrived) * 1000 if replies else math.nan)

    onsets = [onset for onset, _ in clip.energy.utterances(MIN_PAUSE_MS)]
    for started in handler.starts.get(call.call_sid, []):
        fed_ms = (np.searchsorted(line.sent_at, started) - first) * FRAME_MS
        before = [onset for onset in onsets if onset <= fed_ms]
        if not before or fed_ms - before[-1] > 1000:
            continue  # not near a stretch of speech (noise, or the line's silence)
        if fast:
            result.onset_to_start.append(float(fed_ms - before[-1]))
        else:
            result.onset_to_start.append((started - sent(before[-1])) * 1000)
    return result


def group_timings(timings: list[Any], texts: list[str]) -> list[Any]:
    """The session timing of the last final of each handler transcript: with a turn
    detector, a transcript is several finals joined with spaces."""
    grouped: list[Any] = []
    pending = list(timings)
    for text in texts:
        joined: list[str] = []
        while pending:
            timing = pending.pop(0)
            joined.append(timing.text.strip())
            if " ".join(joined) == text.strip() or not pending:
                grouped.append(timing)
                break
    return grouped


def row(label: str, utterances: int, r: dict[str, list[float]], score: float) -> str:
    cells = [f"{label:<18}{utterances:>4}"]
    for key in ("end_to_final", "final_to_audio", "sums", "onset_to_start"):
        cells.append(f"{pct(r[key], 50):6.0f} {pct(r[key], 95):6.0f}")
    cells.append(f"{score * 100:6.1f}")
    return "  ".join(cells)


def table(results: list[ClipResult]) -> None:
    print(
        f"\n{'clip':<18}{'utts':>4}  {'end→final':>13}  {'final→audio':>13}  {'sum':>13}  "
        f"{'onset→start':>13}  {'WER %':>6}"
    )
    print(f"{'':<22}" + "  ".join(["   p50    p95"] * 4))
    merged: dict[str, list[float]] = {k: [] for k in ("end_to_final", "final_to_audio")}
    merged |= {"sums": [], "onset_to_start": []}
    for res in results:
        figures = {
            "end_to_final": res.end_to_final,
            "final_to_audio": res.final_to_audio,
            "sums": res.sums,
            "onset_to_start": res.onset_to_start,
        }
        for key, values in figures.items():
            merged[key] += values
        print(row(res.clip.name, len(res.finals), figures, res.wer))
    score = wer([r.clip.reference for r in results], [" ".join(r.finals) for r in results])
    print(row("all", sum(len(r.finals) for r in results), merged, score))
    monologues = [r for r in results if r.clip.kind == "monologue"]
    if monologues:
        minutes = sum(r.clip.duration_ms for r in monologues) / 60_000
        cut_ins = sum(r.cut_ins for r in monologues)
        per_clip = ", ".join(f"{r.clip.name} {r.cut_ins}" for r in monologues)
        mid = sum(r.mid_sentence for r in monologues)
        print(
            f"\ncut-ins: {cut_ins} replies started inside {minutes * 60:.0f} s of monologue "
            f"= {cut_ins / minutes:.1f} / min ({per_clip}); inside an unfinished sentence: "
            f"{mid} = {mid / minutes:.1f} / min"
        )
    missed = sum(math.isnan(v) for r in results for v in r.final_to_audio)
    if missed:
        print(f"\n{missed} final(s) got no reply audio (cut off by the caller's next words)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="play faster than real time")
    parser.add_argument("--speed", type=float, default=4.0, help="× real time with --fast")
    parser.add_argument("--clips", default="", help="comma-separated clip names (default all)")
    parser.add_argument("--show", action="store_true", help="print each call's transcripts")
    parser.add_argument(
        "--stt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a [stt.whisper] key, e.g. --stt threshold=0.5 (a TOML value)",
    )
    parser.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a [server] key, e.g. --server preemptive_generation=false",
    )
    parser.add_argument("--turn", default="", help="[turn] provider, e.g. smart-turn")
    parser.add_argument("--calls", type=int, default=1, help="simultaneous calls per clip")
    args = parser.parse_args()
    stt_config = {k: v for item in args.stt for k, v in tomllib.loads(item).items()}
    server_config = {k: v for item in args.server for k, v in tomllib.loads(item).items()}
    speed = args.speed if args.fast else 1.0
    clips = load_clips()
    if args.clips:
        wanted = set(args.clips.split(","))
        clips = [c for c in clips if c.name in wanted]
    print(
        f"cpu cores: {os.cpu_count()}; {len(clips)} clips at {speed:g}× real time; "
        f"[stt.whisper] overrides: {stt_config or 'none'}; [server] overrides: "
        f"{server_config or 'none'}; [turn] {args.turn or 'none'}; "
        f"{args.calls} simultaneous call(s) per clip"
    )
    with tempfile.TemporaryDirectory() as tmp:
        runner, base_url, handler = await start_offline_server(
            Path(tmp) / "bench.db",
            TimedHandler,
            stt_config,
            turn=args.turn or None,
            server_config=server_config,
        )
        handler.calls, handler.finals, handler.starts = {}, {}, {}
        results = []
        try:
            async with TwilioSimulator(base_url, speed=speed) as sim:
                for clip in clips:
                    print(f"  {clip.name} ({clip.duration_ms / 1000:.1f} s) …", flush=True)
                    played = await asyncio.gather(
                        *(
                            play_clip(sim, handler, clip, speed=speed, fast=args.fast)
                            for _ in range(args.calls)
                        )
                    )
                    results += played
                    result = played[0]
                    if args.show:
                        for text, detail, e2f, f2a in itertools.zip_longest(
                            result.finals,
                            result.details,
                            result.end_to_final,
                            result.final_to_audio,
                        ):
                            print(f"      final: {text}")
                            print(f"        {detail}; end→final {e2f:.0f}, →audio {f2a:.0f} ms")
                        if result.turn_decisions:
                            print(
                                "      turn decisions (p, complete, ms): "
                                + ", ".join(
                                    f"({p:.2f}, {c}, {t * 1000:.0f})"
                                    for p, c, t in result.turn_decisions
                                )
                            )
        finally:
            await runner.cleanup()
    table(results)


if __name__ == "__main__":
    asyncio.run(main())
