"""WAV in any rate/width/channels → μ-law 8 kHz, and μ-law → PCM16 8 kHz WAV."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from voicehost.audio import ulaw_decode
from voicehost.wavfile import WavError, read_wav_ulaw, write_ulaw_wav


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
    with pytest.raises(WavError, match="not an integer PCM WAV"):
        read_wav_ulaw(junk)
    empty = tmp_path / "empty.wav"
    write(empty, np.zeros(0), 8000, 2, 1)
    with pytest.raises(WavError, match="holds no audio"):
        read_wav_ulaw(empty)
