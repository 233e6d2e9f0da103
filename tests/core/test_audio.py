"""Tests for voicehost.audio: G.711 μ-law codec, streaming resampler, framer, converter."""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest

from voicehost.audio import (
    FRAME_BYTES,
    FRAME_MS,
    SUPPORTED_RATES,
    TWILIO_FORMAT,
    ULAW_SILENCE,
    AudioConverter,
    Framer,
    StreamResampler,
    pcm16_array,
    ulaw_decode,
    ulaw_encode,
    ulaw_to_pcm16_array,
)
from voicehost.contracts import (
    MULAW_8K,
    PCM16_8K,
    PCM16_16K,
    PCM16_22K,
    PCM16_24K,
    AudioFormat,
)

RATE_PAIRS = [(a, b) for a in SUPPORTED_RATES for b in SUPPORTED_RATES]
ALL_CODES = bytes(range(256))
ALL_PCM16 = np.arange(-32768, 32768, dtype="<i2")


def _audioop():
    """CPython's audioop (deprecated in 3.11, gone in 3.13): the comparison reference."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return importlib.import_module("audioop")
        except ImportError:
            pytest.skip("audioop is not available in this Python")


def tone(freq_hz: float, rate: int, seconds: float = 1.0, amplitude: float = 8000.0) -> bytes:
    """A sine tone as PCM16 LE bytes."""
    t = np.arange(round(rate * seconds)) / rate
    return np.rint(amplitude * np.sin(2 * np.pi * freq_hz * t)).astype("<i2").tobytes()


def peak_hz(samples: np.ndarray, rate: int) -> float:
    """Frequency of the strongest FFT bin, refined by parabolic interpolation."""
    x = samples.astype(np.float64) * np.hanning(len(samples))
    mag = np.abs(np.fft.rfft(x))
    k = int(np.argmax(mag[1:-1])) + 1
    a, b, c = np.log(mag[k - 1 : k + 2] + 1e-12)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / len(samples)


def rms_db(samples: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(samples.astype(np.float64) ** 2)) + 1e-9)


def middle(samples: np.ndarray, rate: int, edge_s: float = 0.1) -> np.ndarray:
    """Drop ``edge_s`` seconds at each end (filter start-up and tail)."""
    edge = int(rate * edge_s)
    return samples[edge:-edge]


def resample_all(rs: StreamResampler, data: bytes, sizes: list[int] | None = None) -> bytes:
    """Feed ``data`` in chunks of ``sizes`` (cycled), then flush."""
    if not sizes:
        return rs.process(data) + rs.flush()
    out, i, k = [], 0, 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        out.append(rs.process(data[i : i + n]))
        i, k = i + n, k + 1
    out.append(rs.flush())
    return b"".join(out)


# --- constants -----------------------------------------------------------------------------


def test_constants_describe_twilio_frames() -> None:
    assert TWILIO_FORMAT == MULAW_8K
    assert FRAME_MS == 20
    assert FRAME_BYTES == TWILIO_FORMAT.bytes_for_ms(FRAME_MS) == 160
    assert ULAW_SILENCE == 0xFF


# --- μ-law ---------------------------------------------------------------------------------

# Hand-derived from ITU-T G.711 μ-law as the Sun g711.c reference computes it (14-bit magnitude
# m = |s >> 2|, biased by 33, segment = bit length - 6, mantissa = next 4 bits, all bits
# inverted, sign bit set for s >= 0). E.g. 1000: m = 250, 283 = 0b1_0001_1011 -> segment 3,
# mantissa 1 -> 0x31 -> ~ = 0xCE. Segment edges (m + 33 = 64 << k) sit at s = 124, 8060, 16252.
KNOWN_ENCODE = {
    0: 0xFF,
    1: 0xFF,
    3: 0xFF,
    4: 0xFE,
    -1: 0x7E,  # s >> 2 floors: -1 has 14-bit magnitude 1 (the ITU STL variant gives 0x7F)
    -5: 0x7E,
    123: 0xF0,  # top of segment 0
    124: 0xEF,  # bottom of segment 1
    -124: 0x6F,
    1000: 0xCE,
    -1000: 0x4E,
    8060: 0x9F,  # bottom of segment 6
    16252: 0x8F,  # bottom of segment 7
    -16252: 0x0F,
    32124: 0x80,  # largest decision level
    32767: 0x80,  # clipped
    -32124: 0x00,
    -32768: 0x00,
}

# Decode: s = (((mantissa << 3) + 0x84) << exponent) - 0x84 of the inverted byte, signed.
KNOWN_DECODE = {
    0xFF: 0,
    0x7F: 0,
    0xFE: 8,
    0x7E: -8,
    0xF0: 120,
    0xEF: 132,
    0xCE: 988,
    0x8F: 16764,
    0x80: 32124,
    0x00: -32124,
}


@pytest.mark.parametrize(("sample", "code"), KNOWN_ENCODE.items())
def test_ulaw_encode_known_values(sample: int, code: int) -> None:
    assert ulaw_encode(sample.to_bytes(2, "little", signed=True)) == bytes([code])


@pytest.mark.parametrize(("code", "sample"), KNOWN_DECODE.items())
def test_ulaw_decode_known_values(code: int, sample: int) -> None:
    assert ulaw_decode(bytes([code])) == sample.to_bytes(2, "little", signed=True)


def test_all_256_codes_round_trip_except_negative_zero() -> None:
    back = ulaw_encode(ulaw_decode(ALL_CODES))
    expected = bytearray(ALL_CODES)
    expected[0x7F] = 0xFF  # 0x7F ("-0") decodes to 0, which encodes as 0xFF ("+0")
    assert back == bytes(expected)


def test_decode_is_monotonic_and_symmetric() -> None:
    pcm = ulaw_to_pcm16_array(ALL_CODES).astype(np.int32)
    positive = pcm[0x80:][::-1]  # 0xFF (smallest) ... 0x80 (largest)
    negative = pcm[:0x80][::-1]
    assert np.all(np.diff(positive) > 0)
    assert np.array_equal(negative, -positive)


def test_decode_bit_exact_with_audioop() -> None:
    audioop = _audioop()
    assert ulaw_decode(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)


def test_encode_bit_exact_with_audioop_on_all_int16() -> None:
    audioop = _audioop()
    expected = audioop.lin2ulaw(ALL_PCM16.tobytes(), 2)
    assert ulaw_encode(ALL_PCM16.tobytes()) == expected
    assert audioop.lin2ulaw(ulaw_decode(ALL_CODES), 2) == ulaw_encode(ulaw_decode(ALL_CODES))


def test_encode_accepts_arrays_and_buffers() -> None:
    expected = ulaw_encode(ALL_PCM16.tobytes())
    assert ulaw_encode(ALL_PCM16) == expected
    assert ulaw_encode(ALL_PCM16.astype(">i2")) == expected  # byte order does not matter
    assert ulaw_encode(ALL_PCM16.reshape(256, 256)) == expected
    assert ulaw_encode(bytearray(ALL_PCM16.tobytes())) == expected
    assert ulaw_encode(memoryview(ALL_PCM16.tobytes())) == expected
    assert ulaw_encode(b"") == b""
    assert ulaw_decode(b"") == b""


def test_decode_output_is_little_endian_pcm16() -> None:
    assert ulaw_decode(bytes([0x80, 0x00])) == (32124).to_bytes(2, "little") + (-32124).to_bytes(
        2, "little", signed=True
    )
    assert np.array_equal(pcm16_array(ulaw_decode(ALL_CODES)), ulaw_to_pcm16_array(ALL_CODES))


def test_codec_quantisation_error_is_bounded() -> None:
    err = np.abs(pcm16_array(ulaw_decode(ulaw_encode(ALL_PCM16))).astype(np.int32) - ALL_PCM16)
    assert err.max() <= 644 + 32767 - 32124  # segment 7 half step, plus clipping above 32124
    small = np.abs(ALL_PCM16.astype(np.int32)) < 100
    assert err[small].max() <= 8  # segment 0: 8-unit steps


@pytest.mark.parametrize(
    ("func", "arg", "message"),
    [
        (ulaw_encode, b"\x00\x01\x02", "whole number of 2-byte samples"),
        (ulaw_encode, np.zeros(4, dtype=np.float32), "int16 array"),
        (ulaw_encode, np.zeros(4, dtype=np.int32), "int16 array"),
        (ulaw_encode, "\x00\x00", "bytes-like"),
        (ulaw_encode, [0, 1], "bytes-like"),
        (ulaw_decode, "abc", "bytes-like"),
        (ulaw_decode, None, "bytes-like"),
        (pcm16_array, b"\x00", "whole number of 2-byte samples"),
    ],
)
def test_codec_rejects_bad_input(func, arg, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        func(arg)


# --- StreamResampler -----------------------------------------------------------------------


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_resampler_one_second_gives_one_second(in_rate: int, out_rate: int) -> None:
    out = resample_all(StreamResampler(in_rate, out_rate), tone(440, in_rate), [in_rate // 25])
    assert abs(len(out) // 2 - out_rate) <= 2
    assert len(out) % 2 == 0


@pytest.mark.parametrize(("in_rate", "out_rate"), [(24000, 8000), (8000, 16000), (22050, 8000)])
def test_resampler_chunking_does_not_change_output(in_rate: int, out_rate: int) -> None:
    rng = np.random.default_rng(7)
    data = (rng.standard_normal(in_rate) * 4000).astype("<i2").tobytes()
    whole = resample_all(StreamResampler(in_rate, out_rate), data)
    uneven = [int(n) for n in rng.integers(1, 1500, 50)]
    assert resample_all(StreamResampler(in_rate, out_rate), data, uneven) == whole
    short = data[: in_rate // 5]
    one_by_one = resample_all(StreamResampler(in_rate, out_rate), short, [1])
    assert one_by_one == resample_all(StreamResampler(in_rate, out_rate), short)
    assert resample_all(StreamResampler(in_rate, out_rate), data, [321, 3, 1]) == whole


def test_resampler_carries_the_odd_byte() -> None:
    rs = StreamResampler(8000, 8000)
    assert rs.passthrough
    assert rs.process(b"\x01\x02\x03") == b"\x01\x02"
    assert rs.pending_bytes == 1
    assert rs.process(b"\x04") == b"\x03\x04"
    assert rs.pending_bytes == 0
    assert rs.process(b"\x05") == b""
    assert rs.process(b"\x06\x07\x08\x09") == b"\x05\x06\x07\x08"
    assert rs.flush(discard_partial=True) == b""
    assert rs.pending_bytes == 0


def test_resampler_flush_mid_sample_raises_and_keeps_the_byte() -> None:
    rs = StreamResampler(24000, 8000)
    data = tone(1000, 24000, 0.1)
    first = rs.process(data + data[:1])
    with pytest.raises(ValueError, match="mid-sample"):
        rs.flush()
    assert rs.pending_bytes == 1
    rest = rs.process(data[1:2]) + rs.flush()  # supply the missing byte: nothing was lost
    expected = resample_all(StreamResampler(24000, 8000), data + data[:2])
    assert first + rest == expected


def test_resampler_is_reusable_after_flush_and_reset() -> None:
    data = tone(440, 16000, 0.3)
    fresh = resample_all(StreamResampler(16000, 8000), data)
    rs = StreamResampler(16000, 8000)
    resample_all(rs, tone(1000, 16000, 0.2))
    assert resample_all(rs, data) == fresh
    rs.process(tone(1000, 16000, 0.2) + b"\x00")
    rs.reset()
    assert rs.pending_bytes == 0
    assert resample_all(rs, data) == fresh


@pytest.mark.parametrize(
    ("in_rate", "out_rate"),
    [(24000, 8000), (8000, 16000), (16000, 8000), (22050, 8000), (8000, 24000)],
)
@pytest.mark.parametrize("freq", [440.0, 1000.0])
def test_resampler_keeps_tone_frequency_and_level(freq: float, in_rate: int, out_rate: int) -> None:
    src = tone(freq, in_rate)
    out = pcm16_array(resample_all(StreamResampler(in_rate, out_rate), src, [in_rate // 50]))
    body = middle(out, out_rate)
    assert abs(peak_hz(body, out_rate) - freq) < 3
    assert abs(rms_db(body) - rms_db(middle(pcm16_array(src), in_rate))) < 1.0


def test_resampler_rejects_aliases_when_downsampling() -> None:
    """A 5 kHz tone is above 8 kHz's Nyquist limit: it must be filtered, not folded to 3 kHz."""
    out = pcm16_array(resample_all(StreamResampler(24000, 8000), tone(5000, 24000)))
    assert rms_db(middle(out, 8000)) < rms_db(pcm16_array(tone(5000, 24000))) - 40


def test_resampler_clips_instead_of_wrapping() -> None:
    square = np.tile(np.r_[np.full(12, 32767), np.full(12, -32768)], 1000).astype("<i2")
    out = pcm16_array(resample_all(StreamResampler(24000, 16000), square.tobytes()))
    body = middle(out, 16000).astype(np.int32)
    # Gibbs overshoot saturates at the rails; wrap-around would flip the sign mid-plateau.
    assert body.max() == 32767 and body.min() == -32768
    assert np.sum(np.abs(np.diff(body)) > 60000) < len(body) // 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((44100, 8000), "unsupported input sample rate 44100"),
        ((8000, 48000), "unsupported output sample rate 48000"),
        ((8000.0, 16000), "unsupported input sample rate"),
        (("8000", 16000), "unsupported input sample rate"),
        ((True, 16000), "unsupported input sample rate"),
        ((8000, 16000, "ZQ"), "unknown soxr quality 'ZQ'"),
    ],
)
def test_resampler_rejects_bad_arguments(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StreamResampler(*args)


def test_resampler_rejects_non_bytes_chunk_and_keeps_state() -> None:
    rs = StreamResampler(8000, 16000)
    rs.process(b"\x00")
    with pytest.raises(ValueError, match="bytes-like"):
        rs.process("\x00\x00")  # type: ignore[arg-type]
    assert rs.pending_bytes == 1


# --- Framer --------------------------------------------------------------------------------


def test_framer_carries_partial_frames_over() -> None:
    framer = Framer()
    stream = bytes(range(256)) * 3  # 768 bytes = 4 frames + 128
    frames: list[bytes] = []
    for size in (100, 1, 59, 300, 7, 301):
        frames += framer.push(stream[:size])
        stream = stream[size:]
    assert [len(f) for f in frames] == [160] * 4
    assert framer.pending_bytes == 128
    tail = framer.flush()
    assert b"".join(frames) + tail == (bytes(range(256)) * 3)
    assert framer.flush() is None
    assert framer.pending_bytes == 0


def test_framer_push_returns_nothing_until_a_frame_is_full() -> None:
    framer = Framer(4)
    assert framer.push(b"ab") == []
    assert framer.push(b"cdefghij") == [b"abcd", b"efgh"]
    assert framer.push(b"") == []
    assert framer.flush() == b"ij"


def test_framer_pads_only_at_flush() -> None:
    framer = Framer()
    assert framer.push(b"\x00" * 170) == [b"\x00" * 160]
    assert framer.flush(pad=True) == b"\x00" * 10 + bytes([ULAW_SILENCE]) * 150
    assert framer.flush(pad=True) is None
    pcm = Framer(640, pad_byte=0)
    pcm.push(b"\x01" * 3)
    assert pcm.flush(pad=True) == b"\x01" * 3 + b"\x00" * 637


def test_framer_reset_drops_pending() -> None:
    framer = Framer()
    framer.push(b"x" * 100)
    framer.reset()
    assert framer.push(b"y" * 160) == [b"y" * 160]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frame_bytes": 0}, "frame_bytes must be a positive int"),
        ({"frame_bytes": 160.0}, "frame_bytes must be a positive int"),
        ({"pad_byte": 256}, "pad_byte must be an int in 0..255"),
        ({"pad_byte": -1}, "pad_byte must be an int in 0..255"),
    ],
)
def test_framer_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Framer(**kwargs)


def test_framer_rejects_non_bytes_and_keeps_pending() -> None:
    framer = Framer()
    framer.push(b"abc")
    with pytest.raises(ValueError, match="bytes-like"):
        framer.push("def")  # type: ignore[arg-type]
    assert framer.flush() == b"abc"


# --- AudioConverter ------------------------------------------------------------------------


def convert_all(conv: AudioConverter, data: bytes, size: int) -> bytes:
    out = [conv.convert(data[i : i + size]) for i in range(0, len(data), size)]
    return b"".join(out) + conv.flush()


@pytest.mark.parametrize("fmt", [MULAW_8K, PCM16_8K, PCM16_16K, PCM16_22K, PCM16_24K])
def test_converter_passes_through_identical_formats(fmt: AudioFormat) -> None:
    conv = AudioConverter(fmt, AudioFormat(fmt.encoding, fmt.sample_rate))
    assert conv.passthrough
    assert conv.convert(b"\x01\x02\x03") == b"\x01\x02\x03"
    assert conv.flush() == b""


def test_converter_24k_pcm16_to_twilio_and_back_keeps_the_tone() -> None:
    src = tone(440, 24000)
    to_twilio = AudioConverter(PCM16_24K, TWILIO_FORMAT)
    ulaw = convert_all(to_twilio, src, 961)  # odd chunk size: the odd byte is carried
    assert abs(len(ulaw) - 8000) <= 2
    back = pcm16_array(convert_all(AudioConverter(TWILIO_FORMAT, PCM16_24K), ulaw, 160))
    assert abs(len(back) - 24000) <= 6
    body = middle(back, 24000)
    assert abs(peak_hz(body, 24000) - 440) < 3
    assert abs(rms_db(body) - rms_db(middle(pcm16_array(src), 24000))) < 1.0
    # Waveform survives too (soxr compensates its delay): SNR well above μ-law's ~35 dB.
    ref = middle(pcm16_array(src)[: len(back)], 24000).astype(np.float64)
    noise = body.astype(np.float64) - ref
    assert 10 * np.log10(np.sum(ref**2) / np.sum(noise**2)) > 25


def test_converter_same_rate_codec_steps_match_the_codec() -> None:
    pcm = tone(1000, 8000, 0.5)
    encoded = convert_all(AudioConverter(PCM16_8K, MULAW_8K), pcm, 33)
    assert encoded == ulaw_encode(pcm)
    decoded = convert_all(AudioConverter(MULAW_8K, PCM16_8K), encoded, 17)
    assert decoded == ulaw_decode(encoded)


def test_converter_twilio_to_16k_stt_input() -> None:
    ulaw = ulaw_encode(tone(1000, 8000))
    conv = AudioConverter(TWILIO_FORMAT, PCM16_16K)
    frames = [conv.convert(ulaw[i : i + FRAME_BYTES]) for i in range(0, len(ulaw), FRAME_BYTES)]
    out = pcm16_array(b"".join(frames) + conv.flush())
    assert abs(len(out) - 16000) <= 2
    assert abs(peak_hz(middle(out, 16000), 16000) - 1000) < 3


def test_converter_chunking_does_not_change_output() -> None:
    src = tone(1000, 22050, 0.5)
    whole = convert_all(AudioConverter(PCM16_22K, MULAW_8K), src, len(src))
    assert convert_all(AudioConverter(PCM16_22K, MULAW_8K), src, 441) == whole
    assert convert_all(AudioConverter(PCM16_22K, MULAW_8K), src, 37) == whole


def test_converter_flush_mid_sample_raises_then_discards() -> None:
    conv = AudioConverter(PCM16_24K, MULAW_8K)
    conv.convert(tone(440, 24000, 0.1) + b"\x00")
    with pytest.raises(ValueError, match="mid-sample"):
        conv.flush()
    assert len(conv.flush(discard_partial=True)) > 0


@pytest.mark.parametrize(
    ("src", "dst", "message"),
    [
        (AudioFormat("pcm16", 44100), MULAW_8K, "unsupported source sample rate 44100"),
        (MULAW_8K, AudioFormat("mulaw", 11025), "unsupported destination sample rate 11025"),
        (AudioFormat("pcm16", 24000, 2), MULAW_8K, "only mono"),
        (AudioFormat("opus", 24000), MULAW_8K, "unsupported source encoding 'opus'"),  # type: ignore[arg-type]
        ("mulaw", MULAW_8K, "must be an AudioFormat"),
        (MULAW_8K, (8000, 1), "must be an AudioFormat"),
    ],
)
def test_converter_rejects_bad_formats(src, dst, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AudioConverter(src, dst)


def test_converter_rejects_non_bytes_chunk() -> None:
    with pytest.raises(ValueError, match="bytes-like"):
        AudioConverter(MULAW_8K, PCM16_16K).convert([1, 2, 3])  # type: ignore[arg-type]


@pytest.mark.parametrize(("quality", "min_db", "max_db"), [("LQ", -12.0, -4.0), ("HQ", -1.0, 1.0)])
def test_converter_quality_sets_the_band_edge(quality: str, min_db: float, max_db: float) -> None:
    """3.4 kHz, the top of the telephone band: "LQ" rolls it off, "HQ" keeps it flat."""
    src = tone(3400, 24000)
    out = pcm16_array(convert_all(AudioConverter(PCM16_24K, PCM16_8K, quality), src, 960))
    gain = rms_db(middle(out, 8000)) - rms_db(middle(pcm16_array(src), 24000))
    assert min_db < gain < max_db
