"""WAV files in and out of the telephone format, for ``voicehost simulate`` and tests.

Reading accepts any uncompressed PCM WAV the standard library's :mod:`wave` reads: 8-, 16-,
24- or 32-bit integer samples, any channel count (mixed down to mono) and any sample rate
(resampled to 8 kHz with libsoxr, ``HQ``). Writing stores μ-law 8 kHz audio decoded to a
16-bit PCM 8 kHz mono WAV, which every player opens.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import soxr

from voicehost.audio import ulaw_decode, ulaw_encode

TELEPHONE_RATE = 8000


class WavError(ValueError):
    """A WAV file that cannot be used; the message names the file and the problem."""


def _samples(frames: bytes, width: int, channels: int) -> np.ndarray:
    """Interleaved integer PCM of ``width`` bytes → float32 mono in [-1, 1)."""
    if width == 1:  # 8-bit WAV is unsigned
        data = (np.frombuffer(frames, dtype=np.uint8).astype(np.float32) - 128) / 128
    elif width == 2:
        data = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768
    elif width == 3:
        raw = np.frombuffer(frames, dtype=np.uint8).reshape(-1, 3)
        ints = raw[:, 0].astype(np.int32) | raw[:, 1].astype(np.int32) << 8
        ints |= raw[:, 2].astype(np.int8).astype(np.int32) << 16
        data = ints.astype(np.float32) / 8388608
    else:
        data = (np.frombuffer(frames, dtype="<i4").astype(np.float64) / 2147483648).astype(
            np.float32
        )
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return data


def read_wav_ulaw(path: str | Path) -> bytes:
    """Read a WAV file as μ-law 8 kHz mono bytes (what a Twilio caller sends).

    Raises:
        WavError: the file is missing, not a WAV, compressed/float (not integer PCM) or empty.
    """
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as wav:
            width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise WavError(f"{path}: no such file") from None
    except (wave.Error, EOFError) as exc:
        raise WavError(f"{path}: not an integer PCM WAV file ({exc})") from None
    except OSError as exc:
        raise WavError(f"{path}: cannot read ({exc})") from None
    if width not in (1, 2, 3, 4):
        raise WavError(f"{path}: unsupported sample width of {width} bytes")
    if not frames:
        raise WavError(f"{path}: holds no audio")
    samples = _samples(frames, width, channels)
    if rate != TELEPHONE_RATE:
        samples = soxr.resample(samples, rate, TELEPHONE_RATE, quality="HQ")
    pcm = np.clip(np.rint(samples * 32768), -32768, 32767).astype(np.int16)
    return ulaw_encode(pcm)


def write_ulaw_wav(path: str | Path, ulaw: bytes) -> None:
    """Write μ-law 8 kHz mono bytes as a 16-bit PCM 8 kHz mono WAV at ``path``."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(TELEPHONE_RATE)
        wav.writeframes(ulaw_decode(ulaw))
