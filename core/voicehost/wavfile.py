"""Audio files in and out of the telephone format, for ``voicehost simulate`` and tests.

Reading goes through libsndfile (the ``soundfile`` binding), so any file it opens works: WAV
with integer (8/16/24/32-bit), float (32/64-bit), μ-law or A-law samples, FLAC, AIFF, OGG…
Every channel is mixed down to mono (their mean), and any sample rate is resampled to 8 kHz
with libsoxr (``HQ``) in one piece, then encoded to G.711 μ-law with
:func:`voicehost.audio.ulaw_encode`: what a Twilio caller sends. (The streaming
:class:`voicehost.audio.AudioConverter` is not used here: it takes only the rates providers
speak, and a whole file needs no state across chunks; files at 44.1 or 48 kHz are common.)

Writing stores PCM16 8 kHz WAVs, which every player opens: μ-law decoded to one track
(:func:`write_ulaw_wav`), or two tracks side by side (:func:`write_two_track_wav`, left and
right channel).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import soxr

from voicehost.audio import ulaw_decode, ulaw_encode

__all__ = [
    "TELEPHONE_RATE",
    "WavError",
    "read_audio",
    "read_audio_ulaw",
    "read_wav_ulaw",
    "to_ulaw_8k",
    "write_two_track_wav",
    "write_ulaw_wav",
]

TELEPHONE_RATE = 8000


class WavError(ValueError):
    """An audio file that cannot be used; the one-line message names the file and the
    problem."""


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read an audio file as ``(float32 mono samples in [-1, 1], sample rate)``.

    Raises:
        WavError: the file is missing, a directory, unreadable, not an audio format
            libsndfile knows, or holds no audio.
    """
    path = Path(path)
    if not path.exists():
        raise WavError(f"{path}: no such file")
    if path.is_dir():
        raise WavError(f"{path}: is a directory, not an audio file")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except soundfile.LibsndfileError as exc:
        reason = exc.error_string.rstrip(".") or "unknown error"
        raise WavError(
            f"{path}: not a readable audio file (WAV, FLAC, …): {reason[:1].lower()}{reason[1:]}"
        ) from None
    except (OSError, RuntimeError, ValueError) as exc:  # permissions, a truncated header …
        raise WavError(f"{path}: cannot read ({exc})") from None
    if data.shape[0] == 0:
        raise WavError(f"{path}: holds no audio")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    return np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0), int(rate)


def to_ulaw_8k(samples: np.ndarray, rate: int) -> bytes:
    """Float mono samples at ``rate`` Hz → μ-law 8 kHz bytes (resampled with soxr ``HQ``;
    out-of-range samples are clipped)."""
    samples = np.asarray(samples, dtype=np.float32)
    if rate != TELEPHONE_RATE:
        samples = soxr.resample(samples, rate, TELEPHONE_RATE, quality="HQ")
    pcm = np.clip(np.rint(samples * 32768), -32768, 32767).astype(np.int16)
    return ulaw_encode(pcm)


def read_audio_ulaw(path: str | Path) -> bytes:
    """Read any audio file (see the module doc) as μ-law 8 kHz mono bytes.

    Raises:
        WavError: as :func:`read_audio`.
    """
    samples, rate = read_audio(path)
    return to_ulaw_8k(samples, rate)


#: The former name of :func:`read_audio_ulaw` (it now reads any format, not only WAV).
read_wav_ulaw = read_audio_ulaw


def _write(path: str | Path, samples: np.ndarray) -> None:
    try:
        soundfile.write(str(path), samples, TELEPHONE_RATE, subtype="PCM_16", format="WAV")
    except (soundfile.LibsndfileError, OSError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc)
        raise WavError(f"{path}: cannot write ({reason})") from None


def write_ulaw_wav(path: str | Path, ulaw: bytes) -> None:
    """Write μ-law 8 kHz mono bytes as a 16-bit PCM 8 kHz mono WAV at ``path``.

    Raises:
        WavError: the file cannot be written (a missing folder, no permission).
    """
    _write(path, np.frombuffer(ulaw_decode(ulaw), dtype="<i2"))


def write_two_track_wav(path: str | Path, left: np.ndarray, right: np.ndarray) -> None:
    """Write two int16 8 kHz tracks as one 16-bit PCM 8 kHz stereo WAV (``left`` in channel
    1, ``right`` in channel 2); the shorter track is padded with silence.

    Raises:
        WavError: the file cannot be written.
    """
    length = max(len(left), len(right))
    stereo = np.zeros((length, 2), dtype=np.int16)
    stereo[: len(left), 0] = left
    stereo[: len(right), 1] = right
    _write(path, stereo)
