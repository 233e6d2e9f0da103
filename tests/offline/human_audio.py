"""Real human recordings (``tests/data/human``) as phone calls: loading, energy analysis and
a whole-clip batch decode, shared by ``test_human_calls.py`` and ``bench/human_calls.py``.

Importable as ``human_audio`` once ``tests/offline`` is on ``sys.path`` (its conftest puts it
there; the bench inserts it).

The energy analysis is the independent yardstick the STT session is judged against: it never
uses the VAD. It measures the 100–900 Hz band (:data:`VOICING_BAND_HZ`), where voiced speech
is loud and breaths are not. A 10 ms block is *voiced* when its RMS is at least
:data:`VOICED_ABOVE_FLOOR_DB` above the clip's noise floor (the 10th percentile of block
levels) and no more than :data:`VOICED_BELOW_PEAK_DB` below its loud speech (95th
percentile); a run of voiced blocks shorter than :data:`MIN_RUN_MS` (a click) is ignored.
Relative levels, not a fixed dBFS figure, because the clips range from a studio-quiet
−64 dBFS floor to a −36 dBFS hiss.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import attrs
import numpy as np
from offline_helpers import normalise, wer

from voicehost.audio import AudioConverter, ulaw_to_pcm16_array
from voicehost.contracts import MULAW_8K, PCM16_16K
from voicehost.wavfile import read_wav_ulaw

__all__ = [
    "DATA_DIR",
    "Clip",
    "Energy",
    "batch_transcribe",
    "load_clips",
    "normalise",
    "wer",
]

#: Where the recordings and their manifest (``clips.toml``) live.
DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "human"
#: Block length of the energy analysis, ms.
BLOCK_MS = 10
#: A voiced block is at least this far above the clip's noise floor, dB.
VOICED_ABOVE_FLOOR_DB = 15.0
#: … and at most this far below its loud speech, dB.
VOICED_BELOW_PEAK_DB = 35.0
#: Shorter voiced runs are clicks, not speech, ms.
MIN_RUN_MS = 30
#: The band whose energy is measured, Hz: voiced speech (the first formant and the pitch
#: harmonics under it). A headset breath is as loud as a word over the full band but 25 dB
#: quieter here.
VOICING_BAND_HZ = (100, 900)


@attrs.frozen(eq=False)
class Energy:
    """Voiced/quiet 10 ms blocks of one clip (see the module docstring)."""

    voiced: np.ndarray  # bool, one per 10 ms block
    threshold_db: float

    @classmethod
    def of(cls, ulaw: bytes) -> Energy:
        """Analyse μ-law 8 kHz audio."""
        samples = _voicing_band(ulaw_to_pcm16_array(ulaw).astype(np.float32) / 32768)
        size = 8 * BLOCK_MS
        blocks = samples[: len(samples) // size * size].reshape(-1, size)
        level = 20 * np.log10(np.sqrt((blocks**2).mean(axis=1)) + 1e-6)
        floor, peak = np.percentile(level, 10), np.percentile(level, 95)
        threshold = max(floor + VOICED_ABOVE_FLOOR_DB, peak - VOICED_BELOW_PEAK_DB)
        voiced = level >= threshold
        # Drop clicks: voiced runs shorter than MIN_RUN_MS.
        min_blocks = MIN_RUN_MS // BLOCK_MS
        for start, end in _runs(voiced):
            if end - start < min_blocks:
                voiced[start:end] = False
        return cls(voiced, float(threshold))

    @property
    def first_onset_ms(self) -> int:
        """Start of the first voiced block, ms from the clip's start."""
        return int(np.flatnonzero(self.voiced)[0]) * BLOCK_MS

    @property
    def last_end_ms(self) -> int:
        """End of the last voiced block, ms."""
        return (int(np.flatnonzero(self.voiced)[-1]) + 1) * BLOCK_MS

    def utterances(self, min_pause_ms: int) -> list[tuple[int, int]]:
        """``(onset ms, end ms)`` of the voiced stretches separated by quiet of at least
        ``min_pause_ms`` (shorter gaps, inside words and between them, are bridged)."""
        spans: list[tuple[int, int]] = []
        for start, end in _runs(self.voiced):
            onset, stop = start * BLOCK_MS, end * BLOCK_MS
            if spans and onset - spans[-1][1] < min_pause_ms:
                spans[-1] = (spans[-1][0], stop)
            else:
                spans.append((onset, stop))
        return spans

    def voiced_between(self, start_ms: float, end_ms: float) -> int:
        """How many voiced blocks overlap ``[start_ms, end_ms)``."""
        first = max(0, int(start_ms // BLOCK_MS))
        last = min(len(self.voiced), int(np.ceil(end_ms / BLOCK_MS)))
        return int(self.voiced[first:last].sum()) if last > first else 0

    def last_end_before(self, ms: float) -> int | None:
        """End (ms) of the last voiced block ending at or before ``ms``; None if none."""
        upto = min(len(self.voiced), int(ms // BLOCK_MS))
        hits = np.flatnonzero(self.voiced[:upto])
        return (int(hits[-1]) + 1) * BLOCK_MS if len(hits) else None

    def last_onset_before(self, ms: float, min_pause_ms: int) -> int | None:
        """Onset (ms) of the last utterance (see :meth:`utterances`) starting before ``ms``."""
        onsets = [onset for onset, _ in self.utterances(min_pause_ms) if onset <= ms]
        return onsets[-1] if onsets else None


def _voicing_band(samples: np.ndarray) -> np.ndarray:
    """``samples`` (8 kHz) band-limited to :data:`VOICING_BAND_HZ`, where vowels and voiced
    consonants carry their energy and breaths and hiss carry little."""
    low, high = VOICING_BAND_HZ
    spectrum = np.fft.rfft(samples)
    freqs = np.fft.rfftfreq(len(samples), 1 / 8000)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return np.fft.irfft(spectrum, len(samples)).astype(np.float32)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, end)`` index pairs of the True runs of ``mask``."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


@attrs.frozen(eq=False)
class Clip:
    """One recording as a caller would send it.

    Attributes:
        name: the file's stem (``hts_harvard``).
        kind: ``"answer"`` (one short reply) or ``"monologue"`` (sentences with pauses).
        reference: the hand-checked transcript.
        ulaw: μ-law 8 kHz audio, what Twilio carries.
        energy: its :class:`Energy` analysis.
    """

    name: str
    kind: str
    reference: str
    ulaw: bytes
    energy: Energy

    @property
    def duration_ms(self) -> int:
        return len(self.ulaw) // 8


def load_clips(data_dir: Path = DATA_DIR) -> list[Clip]:
    """Every clip of ``data_dir/clips.toml``, in manifest order.

    Raises:
        FileNotFoundError: the manifest is missing; WavError: a listed file is.
    """
    manifest = tomllib.loads((data_dir / "clips.toml").read_text(encoding="utf-8"))
    clips = []
    for entry in manifest["clip"]:
        ulaw = read_wav_ulaw(data_dir / entry["file"])
        clips.append(
            Clip(
                name=Path(entry["file"]).stem,
                kind=entry["kind"],
                reference=entry["reference"],
                ulaw=ulaw,
                energy=Energy.of(ulaw),
            )
        )
    return clips


def batch_transcribe(ulaw: bytes, config: dict | None = None) -> str:
    """The whole clip decoded at once by faster-whisper's own ``transcribe`` with its
    defaults (30 s window, temperature fallback, earlier text as context, seeking past an
    early stop) on the plugin's model and beam size: Whisper "in one batch", the reference
    the streaming path is measured against. Same μ-law → 16 kHz path as the session.
    Blocking; the model must be loaded or loadable."""
    from voicehost.config_model import parse_table
    from voicehost_whisper_stt import WhisperConfig
    from voicehost_whisper_stt.engine import get_engine

    parsed = parse_table(WhisperConfig, config or {}, table="stt.whisper")
    converter = AudioConverter(MULAW_8K, PCM16_16K)
    pcm = converter.convert(ulaw) + converter.flush()
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    model = get_engine(parsed).load()
    segments, _info = model.transcribe(
        audio, language=parsed.language_code, beam_size=parsed.beam_size, vad_filter=False
    )
    return " ".join(segment.text.strip() for segment in segments)
