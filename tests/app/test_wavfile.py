"""Audio files (WAV of any sample type, FLAC; any rate and channel count) → μ-law 8 kHz, and
μ-law or two tracks → PCM16 8 kHz WAV."""

from __future__ import annotations

import wave

import numpy as np
import pytest
import soundfile

from voicehost.audio import ulaw_decode
from voicehost.wavfile import (
    WavError,
    read_audio,
    read_audio_ulaw,
    read_wav_ulaw,
    write_two_track_wav,
    write_ulaw_wav,
)


def tone(rate: int, seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return 0.5 * np.sin(2 * np.pi * hz * t)


def write(path, samples: np.ndarray, rate: int, width: int, channels: int) -> None:
    if width == 1:
        data = (np.clip(samples, -1, 1) * 127 + 128).astype(np.uint8).tobytes()
    elif width == 2:
        data = (samples * 32767).astype("<i2").tobytes()
    elif width == 3:
        ints = (samples * 8388607).astype("<i4")
        data = b"".join(int(i).to_bytes(4, "little", signed=True)[:3] for i in ints)
    else:
        data = (samples * 2147483647).astype("<i4").tobytes()
    if channels == 2:  # the same signal on both channels, interleaved
        step = width
        data = b"".join(data[i : i + step] * 2 for i in range(0, len(data), step))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(data)


def dominant_hz(ulaw: bytes) -> float:
    pcm = np.frombuffer(ulaw_decode(ulaw), dtype="<i2").astype(np.float32)
    spectrum = np.abs(np.fft.rfft(pcm))
    return float(np.argmax(spectrum) * 8000 / len(pcm))


@pytest.mark.parametrize(
    ("rate", "width", "channels"),
    [(8000, 2, 1), (16000, 2, 1), (44100, 3, 2), (48000, 4, 1), (22050, 1, 2)],
)
def test_any_pcm_wav_becomes_ulaw_8k_of_the_same_sound(tmp_path, rate, width, channels):
    path = tmp_path / "in.wav"
    write(path, tone(rate, 0.5), rate, width, channels)
    ulaw = read_wav_ulaw(path)
    assert abs(len(ulaw) - 4000) <= 2  # 0.5 s at 8 kHz, one byte a sample
    assert abs(dominant_hz(ulaw) - 440) < 5


def test_written_wav_is_pcm16_8k_mono_and_round_trips(tmp_path):
    src = tmp_path / "in.wav"
    write(src, tone(8000, 0.25), 8000, 2, 1)
    ulaw = read_wav_ulaw(src)
    out = tmp_path / "out.wav"
    write_ulaw_wav(out, ulaw)
    with wave.open(str(out), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        assert wav.getnframes() == len(ulaw)
    assert read_wav_ulaw(out) == ulaw


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(WavError, match="no such file"):
        read_wav_ulaw(tmp_path / "missing.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not a wav file at all")
    with pytest.raises(WavError, match=r"not a readable audio file .*format not recognised"):
        read_wav_ulaw(junk)
    empty = tmp_path / "empty.wav"
    write(empty, np.zeros(0), 8000, 2, 1)
    with pytest.raises(WavError, match="holds no audio"):
        read_wav_ulaw(empty)
    with pytest.raises(WavError, match="is a directory"):
        read_wav_ulaw(tmp_path)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes((tmp_path / "empty.wav").read_bytes()[:20])
    with pytest.raises(WavError, match=r"truncated\.wav"):
        read_wav_ulaw(truncated)


@pytest.mark.parametrize(
    ("fmt", "subtype", "rate"),
    [
        ("WAV", "FLOAT", 48000),
        ("WAV", "DOUBLE", 16000),
        ("WAV", "PCM_24", 44100),
        ("WAV", "PCM_32", 8000),
        ("WAV", "PCM_U8", 11025),
        ("WAV", "ULAW", 8000),
        ("WAV", "ALAW", 8000),
        ("FLAC", "PCM_16", 22050),
        ("FLAC", "PCM_24", 96000),
    ],
)
def test_float_24_bit_ulaw_and_flac_files_read_as_the_same_sound(tmp_path, fmt, subtype, rate):
    path = tmp_path / f"in.{fmt.lower()}"
    soundfile.write(str(path), tone(rate, 0.5), rate, subtype=subtype, format=fmt)
    ulaw = read_audio_ulaw(path)
    assert abs(len(ulaw) - 4000) <= 2
    assert abs(dominant_hz(ulaw) - 440) < 5
    pcm = np.frombuffer(ulaw_decode(ulaw), dtype="<i2") / 32768
    assert 0.3 < np.abs(pcm[400:-400]).max() < 0.6  # the tone's level (0.5) is kept


def test_stereo_is_mixed_down_to_the_mean_of_its_channels(tmp_path):
    left = tone(16000, 0.5)
    path = tmp_path / "stereo.wav"
    soundfile.write(str(path), np.column_stack([left, np.zeros_like(left)]), 16000)
    samples, rate = read_audio(path)
    assert rate == 16000 and samples.ndim == 1 and samples.dtype == np.float32
    np.testing.assert_allclose(samples, left / 2, atol=1e-4)
    five = tmp_path / "five.wav"
    soundfile.write(str(five), np.column_stack([left] * 5), 16000, subtype="FLOAT")
    np.testing.assert_allclose(read_audio(five)[0], left, atol=1e-6)


def test_float_samples_beyond_full_scale_are_clipped_not_wrapped(tmp_path):
    path = tmp_path / "loud.wav"
    soundfile.write(str(path), 3 * tone(8000, 0.25), 8000, subtype="FLOAT")
    pcm = np.frombuffer(ulaw_decode(read_audio_ulaw(path)), dtype="<i2")
    assert pcm.max() > 30000 and pcm.min() < -30000
    # a wrapped int16 would flip the sign at the peaks: the peaks stay at the peaks' sign
    peaks = tone(8000, 0.25) > 0.45
    assert (pcm[peaks] > 0).all()


def test_two_track_wav_holds_each_track_in_its_channel(tmp_path):
    left = (tone(8000, 0.5) * 32767).astype(np.int16)
    right = (tone(8000, 0.25, hz=700) * 32767).astype(np.int16)
    out = tmp_path / "call.wav"
    write_two_track_wav(out, left, right)
    with wave.open(str(out), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        assert wav.getnframes() == 4000
    data, _ = soundfile.read(str(out), dtype="int16")
    np.testing.assert_array_equal(data[:, 0], left)
    np.testing.assert_array_equal(data[:2000, 1], right)
    assert not data[2000:, 1].any()  # the shorter track is padded with silence


def test_writing_where_it_cannot_is_a_clear_error(tmp_path):
    with pytest.raises(WavError, match="cannot write"):
        write_ulaw_wav(tmp_path / "missing" / "out.wav", b"\xff" * 160)
