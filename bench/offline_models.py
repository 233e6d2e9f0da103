"""Speed of the offline models (Piper TTS, Whisper STT), printed as numbers (no assertions).

Run: ``uv run python bench/offline_models.py [--calls 1,2,4] [--realtime-utterances 4]``.

* **Piper** — load time; time to first audio (``synthesize`` called → first PCM chunk) and
  real-time factor (synthesis wall time ÷ audio duration) for multi-sentence replies.
* **Whisper** — real-time factor (inference wall time ÷ audio duration) of final (beam search,
  timestamps) and interim (greedy) decodes on Piper-synthesized caller utterances carried as a
  phone call carries them (μ-law 8 kHz → 16 kHz), and their word error rate.
* **End of caller speech → final transcript**, one call, audio time: the ``min_silence_ms``
  endpointing wait measured in audio (from the true end of speech, the last loud 10 ms of
  the utterance, to the VAD's decision) plus the wall time queued and in Whisper. Audio is fed
  faster than real time, so this is what a real-time call would see with the CPU to itself.
* **Simultaneous calls**, real-time paced: N calls each speak ``--realtime-utterances``
  utterances at 20 ms a frame with 1 s pauses; latency is wall time from feeding the true end
  of speech to ``on_transcript``. Shows how the shared model's queue grows with load.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "offline"))

from offline_helpers import (
    CALLER_SENTENCES,
    FRAME,
    Recorder,
    silence,
    synthesize_ulaw,
    wer,
)

from voicehost.audio import AudioConverter, ulaw_to_pcm16_array
from voicehost.config_model import parse_table
from voicehost.contracts import MULAW_8K, PCM16_16K, TranscriptionRequest
from voicehost_piper_tts import BUNDLED_VOICE, PiperConfig, PiperProvider, load_voice, resolve_voice
from voicehost_whisper_stt import WhisperConfig, WhisperProvider
from voicehost_whisper_stt.engine import get_engine
from voicehost_whisper_stt.vad import preload

#: The ``[stt.whisper]`` table used throughout (``--whisper key=value`` sets keys of it;
#: parsed in ``main``).
WHISPER = WhisperConfig()

REPLIES = [
    "Thanks for calling. Our office is open from nine in the morning until five in the "
    "afternoon, Monday to Friday. Is there anything else I can help you with?",
    "I can help with that. Your appointment is booked for Tuesday at ten. You will get a "
    "text message to confirm it.",
    "Sorry, I did not catch that. Could you say it again, please?",
    "Goodbye, and have a nice day.",
]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def line(label: str, values: list[float], unit: str = "ms", digits: int = 1) -> None:
    p50, p95 = pct(values, 50), pct(values, 95)
    print(
        f"  {label:<44} p50 {p50:8.{digits}f} {unit}   p95 {p95:8.{digits}f} {unit}"
        f"   (n={len(values)})"
    )


def speech_end_ms(ulaw: bytes, level: float = 0.02) -> float:
    """Audio time (ms) where the last loud 10 ms block of ``ulaw`` ends."""
    samples = ulaw_to_pcm16_array(ulaw).astype(np.float32) / 32768
    blocks = samples[: len(samples) // 80 * 80].reshape(-1, 80)
    loud = np.flatnonzero(np.sqrt((blocks**2).mean(axis=1)) > level)
    return float((loud[-1] + 1) * 10) if len(loud) else 0.0


async def bench_piper(rounds: int) -> None:
    print("Piper (en_US-joe-medium, 22.05 kHz)")
    started = time.perf_counter()
    load_voice(resolve_voice(BUNDLED_VOICE))
    print(f"  load: {(time.perf_counter() - started) * 1000:.0f} ms")
    provider = PiperProvider()
    first_ms, rtf = [], []
    for _ in range(rounds):
        for text in REPLIES:
            started = time.perf_counter()
            first = None
            audio = 0
            async for chunk in provider.synthesize(text, PiperConfig()):
                first = first or time.perf_counter()
                audio += len(chunk)
            total = time.perf_counter() - started
            first_ms.append((first - started) * 1000)  # type: ignore[operator]
            rtf.append(total / (audio / 2 / 22050))
    line("time to first audio", first_ms)
    line("real-time factor (lower is faster)", rtf, unit="x", digits=3)


def bench_whisper_rtf(utterances: list[tuple[str, bytes]]) -> None:
    config = WHISPER
    print(
        f"Whisper ({config.model}, {config.compute_type}, {config.threads} threads, "
        f"beam {config.beam_size})"
    )
    engine = get_engine(config)
    started = time.perf_counter()
    engine.load()
    preload()
    print(f"  load: {(time.perf_counter() - started) * 1000:.0f} ms")
    finals, rtf_final, rtf_partial = [], [], []
    for _text, ulaw in utterances:
        converter = AudioConverter(MULAW_8K, PCM16_16K)
        pcm = converter.convert(ulaw) + converter.flush()
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
        seconds = len(audio) / 16000
        result = engine.transcribe(audio, language="en", beam_size=config.beam_size)
        finals.append(result.text)
        rtf_final.append(result.inference_ms / 1000 / seconds)
        partial = engine.transcribe(audio, language="en", beam_size=1, final=False)
        rtf_partial.append(partial.inference_ms / 1000 / seconds)
    line("real-time factor, final decode", rtf_final, unit="x", digits=3)
    line("real-time factor, interim decode", rtf_partial, unit="x", digits=3)
    score = wer([t for t, _ in utterances], finals)
    print(f"  word error rate over {len(utterances)} utterances: {score * 100:.1f}%")


async def bench_one_call(utterances: list[tuple[str, bytes]]) -> None:
    print("End of caller speech → final transcript, one call (audio-time endpointing)")
    recorder = Recorder()
    session = WhisperProvider().create_session(TranscriptionRequest(WHISPER, recorder.callbacks()))
    await session.connect()
    position_ms = 0.0
    true_ends = []
    for _text, ulaw in utterances:
        stream = ulaw + silence(1000)
        true_ends.append(position_ms + speech_end_ms(ulaw))
        for start in range(0, len(stream), FRAME):
            session.send_audio(stream[start : start + FRAME])
        position_ms += len(stream) / 8
        await session.wait_idle()  # one call: no backlog of its own
    await session.close()
    timings = session.final_timings
    if len(timings) != len(true_ends):
        print(f"  ! {len(timings)} finals for {len(true_ends)} utterances")
    pairs = list(zip(timings, true_ends, strict=False))
    endpoint = [t.endpoint_ms - end for t, end in pairs]
    inference = [t.queued_ms + t.inference_ms for t, _ in pairs]
    # The decode starts at submitted_ms (post_roll_ms into the pause when speculative) and the
    # final is reported at the later of its end and the endpoint.
    total = [
        max(t.endpoint_ms, t.submitted_ms + t.queued_ms + t.inference_ms) - end for t, end in pairs
    ]
    speculative = sum(t.speculative for t in timings)
    line("endpointing wait (audio)", endpoint)
    line("queue + inference (wall)", inference)
    line(f"total ({speculative}/{len(timings)} decodes started early)", total)


async def realtime_call(utterances: list[tuple[str, bytes]], latencies: list[float]) -> None:
    loop = asyncio.get_running_loop()
    ends: list[float] = []
    got: list[float] = []
    recorder = Recorder()
    base = recorder.callbacks()
    callbacks = type(base)(
        on_transcript=lambda text: got.append(loop.time()),
        on_speech_start=base.on_speech_start,
    )
    session = WhisperProvider().create_session(TranscriptionRequest(WHISPER, callbacks))
    await session.connect()
    stream = b"".join(ulaw + silence(1000) for _, ulaw in utterances)
    offsets, position = [], 0
    for _, ulaw in utterances:
        offsets.append(position + int(speech_end_ms(ulaw) * 8))
        position += len(ulaw) + 8000
    started = loop.time()
    next_end = 0
    for index, start in enumerate(range(0, len(stream), FRAME)):
        session.send_audio(stream[start : start + FRAME])
        if next_end < len(offsets) and start + FRAME >= offsets[next_end]:
            ends.append(loop.time())
            next_end += 1
        await asyncio.sleep(max(0.0, started + (index + 1) * 0.02 - loop.time()))
    await session.close()
    latencies.extend((g - e) * 1000 for g, e in zip(got, ends, strict=False))


async def bench_concurrency(
    utterances: list[tuple[str, bytes]], calls: list[int], per_call: int
) -> None:
    print(f"Simultaneous real-time calls ({per_call} utterances each): speech end → final, wall")
    for n in calls:
        latencies: list[float] = []
        picks = [
            [utterances[(c * per_call + k) % len(utterances)] for k in range(per_call)]
            for c in range(n)
        ]
        await asyncio.gather(*(realtime_call(p, latencies) for p in picks))
        line(f"{n} call(s)", latencies)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--piper-rounds", type=int, default=3)
    parser.add_argument("--calls", default="1,2,4", help="comma-separated; empty to skip")
    parser.add_argument("--realtime-utterances", type=int, default=3)
    parser.add_argument(
        "--whisper",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="[stt.whisper] setting, value as TOML (e.g. workers=2, beam_size=1)",
    )
    args = parser.parse_args()
    import tomllib

    global WHISPER
    table: dict[str, object] = {}
    for item in args.whisper:
        table.update(tomllib.loads(item))
    WHISPER = parse_table(WhisperConfig, table, table="stt.whisper", file="--whisper")

    await bench_piper(args.piper_rounds)
    utterances = [(text, synthesize_ulaw(text)) for text in CALLER_SENTENCES]
    bench_whisper_rtf(utterances)
    await bench_one_call(utterances)
    calls = [int(c) for c in args.calls.split(",") if c.strip()]
    if calls:
        await bench_concurrency(utterances, calls, args.realtime_utterances)


if __name__ == "__main__":
    asyncio.run(main())
