"""Noisy phone calls: the real recordings of ``tests/data/human`` mixed with noise at a given
signal-to-noise ratio, shared by ``test_noisy_*.py`` and ``bench/noisy_calls.py``.

Importable as ``noisy_audio`` once ``tests/offline`` is on ``sys.path`` (its conftest puts it
there; the bench inserts it).

Three kinds of noise (:data:`NOISE_KINDS`; sources and licences in
``tests/data/noise/README.md``):

* ``pink`` — 1/f noise, 50–3800 Hz, generated here from a seeded generator (no file);
* ``babble`` — five other talkers at once (codec2's recordings, none in the speech set);
* ``street`` — buses and a truck pulling away, and wind (OpenSFX's edited field recordings).

**SNR** is the speech's *active* level over the noise's level: the speech power is measured
over the clip's voiced 10 ms blocks (:class:`human_audio.Energy`, which never uses the VAD),
the noise power over the whole noise excerpt, both full-band at 8 kHz. Measuring speech over
its voiced blocks only (not its pauses) makes the noise louder than a whole-clip SNR would:
10 dB here is a noisy call.

Everything is deterministic: the noise excerpt of a clip starts at an offset derived from the
clip's name (CRC-32), pink noise from a fixed seed.
"""

from __future__ import annotations

import wave
import zlib
from pathlib import Path
from typing import Final

import attrs
import numpy as np
from human_audio import BLOCK_MS, Clip, load_clips

from voicehost.audio import ulaw_encode, ulaw_to_pcm16_array

__all__ = [
    "NOISE_DIR",
    "NOISE_KINDS",
    "SNRS_DB",
    "NoisyClip",
    "active_level_db",
    "bed_ulaw",
    "mix",
    "noise",
    "noise_only_ulaw",
    "noisy_set",
]

#: Where the noise recordings live.
NOISE_DIR: Final = Path(__file__).resolve().parents[1] / "data" / "noise"
#: The kinds of noise, in report order.
NOISE_KINDS: Final = ("pink", "babble", "street")
#: The SNRs of the noisy set, dB.
SNRS_DB: Final = (20.0, 10.0, 5.0)
#: Sample rate of everything here, Hz (the phone line's).
RATE: Final = 8000
#: Noise is produced at this RMS level, dBFS, before being scaled to an SNR.
NOISE_LEVEL_DBFS: Final = -20.0
#: Active speech level that noise-only calls are scaled against, dBFS: the median active
#: level of the ``tests/data/human`` clips (−21.6 to −16.4 dBFS), so "noise alone at 5 dB"
#: is as loud as the noise of the 5 dB noisy clips.
REFERENCE_SPEECH_DBFS: Final = -20.5
#: Noise heard before and after the speech of a noisy clip, ms (a line is never silent).
LEAD_MS: Final = 1000
TAIL_MS: Final = 1000
_PINK_SEED: Final = 16


def _rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def _pink(n: int, seed: int) -> np.ndarray:
    """``n`` samples of 1/f noise band-limited to 50–3800 Hz at :data:`NOISE_LEVEL_DBFS`."""
    rng = np.random.default_rng(seed)
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    gain = np.zeros_like(freqs)
    band = (freqs >= 50) & (freqs <= 3800)
    gain[band] = 1 / np.sqrt(freqs[band])
    x = np.fft.irfft(spectrum * gain, n)
    return (x * 10 ** ((NOISE_LEVEL_DBFS - _rms_db(x)) / 20)).astype(np.float32)


def _recording(kind: str) -> np.ndarray:
    with wave.open(str(NOISE_DIR / f"{kind}.wav"), "rb") as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
            raise ValueError(f"{kind}.wav: want 8 kHz mono 16-bit")
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    return x * np.float32(10 ** ((NOISE_LEVEL_DBFS - _rms_db(x)) / 20))


def noise(kind: str, ms: int, *, offset: int = 0) -> np.ndarray:
    """``ms`` of noise of ``kind`` (float32, 8 kHz, :data:`NOISE_LEVEL_DBFS` RMS).

    ``offset`` picks the excerpt: the sample the (looped) recording starts at, or the seed
    of pink noise.

    Raises:
        ValueError: an unknown kind.
    """
    n = RATE * ms // 1000
    if kind == "pink":
        return _pink(n, _PINK_SEED + offset)
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise {kind!r}; one of {', '.join(NOISE_KINDS)}")
    x = _recording(kind)
    return np.resize(np.roll(x, -(offset % len(x))), n)


def active_level_db(clip: Clip) -> float:
    """The clip's active speech level, dBFS: its power over its voiced 10 ms blocks."""
    pcm = ulaw_to_pcm16_array(clip.ulaw).astype(np.float32) / 32768
    size = RATE * BLOCK_MS // 1000
    blocks = pcm[: len(pcm) // size * size].reshape(-1, size)
    voiced = clip.energy.voiced[: len(blocks)]
    return _rms_db(blocks[voiced])


@attrs.frozen(eq=False)
class NoisyClip:
    """A human clip with noise added, as a caller on a noisy line sends it.

    Attributes:
        clip: the clean clip (its ``energy`` times the speech; offset by ``lead_ms``).
        kind: the noise kind; snr_db: the SNR, dB.
        ulaw: μ-law 8 kHz: ``lead_ms`` of noise alone, the speech with noise, ``tail_ms``
            of noise alone.
        lead_ms, tail_ms: noise alone before and after the speech, ms.
        noise_gain: the factor applied to :func:`noise` to reach ``snr_db``.
        take: which excerpt of the noise (0: the first).
    """

    clip: Clip
    kind: str
    snr_db: float
    ulaw: bytes
    lead_ms: int
    tail_ms: int
    noise_gain: float
    take: int = 0

    @property
    def name(self) -> str:
        take = f"#{self.take}" if self.take else ""
        return f"{self.clip.name}@{self.kind}{self.snr_db:g}{take}"

    @property
    def reference(self) -> str:
        return self.clip.reference

    @property
    def duration_ms(self) -> int:
        return len(self.ulaw) // 8

    @property
    def speech_ulaw(self) -> bytes:
        """The part that carries speech (no lead, no tail): what a batch decode gets."""
        start = self.lead_ms * 8
        return self.ulaw[start : start + len(self.clip.ulaw)]


def mix(
    clip: Clip,
    kind: str,
    snr_db: float,
    *,
    lead_ms: int = LEAD_MS,
    tail_ms: int = TAIL_MS,
    take: int = 0,
) -> NoisyClip:
    """``clip`` with ``kind`` noise at ``snr_db`` (see the module docstring), padded with
    ``lead_ms`` and ``tail_ms`` of the same noise alone. ``take`` picks another excerpt of
    the noise (0: the one named by the clip alone)."""
    speech = ulaw_to_pcm16_array(clip.ulaw).astype(np.float32) / 32768
    offset = zlib.crc32(clip.name.encode() + (f"#{take}".encode() if take else b""))
    ms = lead_ms + clip.duration_ms + tail_ms
    bed = noise(kind, ms, offset=offset % 1_000_003)
    gain = 10 ** ((active_level_db(clip) - snr_db - NOISE_LEVEL_DBFS) / 20)
    out = bed * np.float32(gain)
    start = lead_ms * RATE // 1000
    out[start : start + len(speech)] += speech
    pcm = np.clip(np.round(out * 32768), -32768, 32767).astype("<i2")
    return NoisyClip(clip, kind, snr_db, ulaw_encode(pcm), lead_ms, tail_ms, float(gain), take)


def bed_ulaw(noisy: NoisyClip, ms: int, *, offset: int = 7919) -> bytes:
    """``ms`` of ``noisy``'s noise alone at its level (μ-law 8 kHz), from another excerpt:
    what the line carries around the clip (during the greeting, after the caller stops)."""
    out = noise(noisy.kind, ms, offset=offset) * np.float32(noisy.noise_gain)
    return ulaw_encode(np.clip(np.round(out * 32768), -32768, 32767).astype("<i2"))


def noise_only_ulaw(kind: str, ms: int, snr_db: float, *, offset: int = 0) -> bytes:
    """``ms`` of ``kind`` noise alone (μ-law 8 kHz), as loud as in a noisy clip at
    ``snr_db`` against :data:`REFERENCE_SPEECH_DBFS` speech."""
    gain = 10 ** ((REFERENCE_SPEECH_DBFS - snr_db - NOISE_LEVEL_DBFS) / 20)
    out = noise(kind, ms, offset=offset) * np.float32(gain)
    return ulaw_encode(np.clip(np.round(out * 32768), -32768, 32767).astype("<i2"))


def noisy_set(
    kinds: tuple[str, ...] = NOISE_KINDS,
    snrs_db: tuple[float, ...] = SNRS_DB,
    names: tuple[str, ...] = (),
    takes: int = 1,
) -> list[NoisyClip]:
    """Every human clip (or those in ``names``) × ``kinds`` × ``snrs_db`` × ``takes`` (noise
    excerpts), kind-major."""
    clips = [c for c in load_clips() if not names or c.name in names]
    return [
        mix(c, kind, snr, take=take)
        for kind in kinds
        for snr in snrs_db
        for take in range(takes)
        for c in clips
    ]


@attrs.frozen
class Streamed:
    """What a :class:`~voicehost_whisper_stt.WhisperSession` reported for one fed stream.

    Attributes:
        finals: the final transcripts, in order.
        starts_ms: audio time (ms from the stream's start) of each ``on_speech_start``.
    """

    finals: list[str]
    starts_ms: list[int]

    @property
    def text(self) -> str:
        return " ".join(self.finals)


async def stream(ulaw: bytes, *, settle_ms: int = 2000, **config: object) -> Streamed:
    """Feed μ-law 8 kHz audio to a fresh Whisper session in 20 ms frames, faster than real
    time, as a phone call would deliver it (the session decides in audio time, so the
    decisions are those of a live call), then close it. Every ``settle_ms`` of audio it waits
    for queued decodes, so a slow machine does not pile them up. ``config``: ``[stt.whisper]``
    keys (``noise_gate`` on unless given, as in the shipped ``plugins.toml``). Blocking on
    inference; the model loads on first use."""
    import asyncio

    from offline_helpers import FRAME, Recorder

    from voicehost.contracts import TranscriptionRequest
    from voicehost_whisper_stt import WhisperConfig, WhisperProvider

    config.setdefault("noise_gate", True)  # the shipped plugins.toml's
    recorder = Recorder()
    session = WhisperProvider().create_session(
        TranscriptionRequest(WhisperConfig(**config), recorder.callbacks(), call_sid="CAnoisy")
    )
    await session.connect()
    settle = max(1, settle_ms // 20)
    for index, start in enumerate(range(0, len(ulaw), FRAME), 1):
        session.send_audio(ulaw[start : start + FRAME])
        recorder.position += len(ulaw[start : start + FRAME])
        await asyncio.sleep(0)
        if index % settle == 0:
            await session.wait_idle()  # type: ignore[attr-defined]
    await session.close()
    return Streamed(recorder.texts("final"), [e[-1] // 8 for e in recorder.of("start")])
