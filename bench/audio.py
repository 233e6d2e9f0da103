"""Throughput and latency of voicehost.audio, printed as numbers (no assertions).

Run: ``uv run python bench/audio.py``. Throughput is "x real time": seconds of audio processed
per second of CPU, in 20 ms chunks as the call path feeds them. Latency is how far the
resampler's output lags its input on average and at worst while 20 ms chunks stream through
(audio it holds back until more input or ``flush()``), per soxr quality.
"""

from __future__ import annotations

import time

import numpy as np

from voicehost.audio import (
    FRAME_BYTES,
    QUALITIES,
    AudioConverter,
    StreamResampler,
    ulaw_decode,
    ulaw_encode,
)
from voicehost.contracts import MULAW_8K, PCM16_16K, PCM16_24K

SECONDS = 20.0
PAIRS = [(8000, 16000), (8000, 24000), (16000, 8000), (24000, 8000), (22050, 8000)]


def _x_realtime(audio_s: float, fn) -> float:
    start = time.perf_counter()
    fn()
    return audio_s / (time.perf_counter() - start)


def _pcm(rate: int, seconds: float = SECONDS) -> bytes:
    rng = np.random.default_rng(0)
    return (rng.standard_normal(int(rate * seconds)) * 3000).astype("<i2").tobytes()


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def bench_codec() -> None:
    pcm = _pcm(8000)
    ulaw = ulaw_encode(pcm)
    frames_pcm, frames_ulaw = _chunks(pcm, 2 * FRAME_BYTES), _chunks(ulaw, FRAME_BYTES)
    print("μ-law 8 kHz codec (x real time)")
    enc_all = _x_realtime(SECONDS, lambda: ulaw_encode(pcm))
    dec_all = _x_realtime(SECONDS, lambda: ulaw_decode(ulaw))
    print(f"  encode, one {SECONDS:.0f} s buffer : {enc_all:>12,.0f}")
    print(f"  decode, one {SECONDS:.0f} s buffer : {dec_all:>12,.0f}")
    enc = _x_realtime(SECONDS, lambda: [ulaw_encode(f) for f in frames_pcm])
    dec = _x_realtime(SECONDS, lambda: [ulaw_decode(f) for f in frames_ulaw])
    print(f"  encode, 20 ms frames    : {enc:>12,.0f}")
    print(f"  decode, 20 ms frames    : {dec:>12,.0f}")


def bench_resample() -> None:
    print("StreamResampler, 20 ms chunks (x real time; default quality)")
    for a, b in PAIRS:
        rs = StreamResampler(a, b)
        chunks = _chunks(_pcm(a), 2 * a // 50)
        speed = _x_realtime(SECONDS, lambda rs=rs, chunks=chunks: [rs.process(c) for c in chunks])
        print(f"  {a:>5} -> {b:>5} Hz : {speed:>8,.0f}")
    print("AudioConverter, 20 ms chunks (x real time)")
    for src, dst in [(MULAW_8K, PCM16_16K), (MULAW_8K, PCM16_24K), (PCM16_24K, MULAW_8K)]:
        conv = AudioConverter(src, dst)
        chunks = _chunks(
            _pcm(src.sample_rate) if src.encoding == "pcm16" else ulaw_encode(_pcm(8000)),
            src.bytes_for_ms(20),
        )
        speed = _x_realtime(SECONDS, lambda c=conv, ch=chunks: [c.convert(x) for x in ch])
        print(f"  {src!s:>18} -> {dst!s:<18}: {speed:>8,.0f}")


def bench_latency() -> None:
    print("Resampler latency in 20 ms chunks, mean / max ms held back, by soxr quality")
    print("  quality " + "".join(f"{f'{a // 1000}k->{b // 1000}k':>14}" for a, b in PAIRS))
    for quality in QUALITIES:
        cells = []
        for a, b in PAIRS:
            rs = StreamResampler(a, b, quality)
            chunk, fed, got, lags = bytes(2 * a // 50), 0, 0, []
            for i in range(150):
                got += len(rs.process(chunk)) // 2
                fed += len(chunk) // 2
                if i >= 50:
                    lags.append((fed * b / a - got) * 1000 / b)
            cells.append(f"{np.mean(lags):6.1f} /{np.max(lags):5.1f}")
        print(f"  {quality:<7} " + "".join(f"{c:>14}" for c in cells))


if __name__ == "__main__":
    bench_codec()
    bench_resample()
    bench_latency()
