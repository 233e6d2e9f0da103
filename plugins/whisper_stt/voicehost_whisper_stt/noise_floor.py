"""Each call's background noise, learnt while the caller is silent, and a level gate for when
the VAD cannot tell that noise from speech.

Silero VAD ignores stationary noise well: on real phone speech mixed with pink noise or street
traffic at 5–20 dB SNR (``tests/data/noise``), noise-only 32 ms windows score below 0.25 and
the caller's words 0.6–0.9, so the VAD alone segments those calls as it does clean ones.
*Other voices* (babble: a café, a crowd, a television) are speech to it: 99 % of babble-only
windows score above 0.15, median 0.92. Left alone, the segmenter then opens an utterance on
the noise and never ends it (a false turn, a barge-in, and Whisper transcribing the crowd).

What still tells the caller from the crowd is level: the caller is nearer the microphone.
:class:`NoiseFloor` keeps the last ``history_ms`` of windows heard outside the caller's
speech, as a level smoothed over :data:`SMOOTH_WINDOWS` windows (256 ms) of pre-emphasised
audio (first difference, 0.95: it discounts the rumble of engines and wind, where speech has
little energy), and their VAD probabilities, and judges that history (its *regime*):
**babble** when the VAD hears much of it as speech (:data:`VOICED_FRACTION`) and yet its
level is steady (95th minus 50th percentile within :data:`STEADY_SPREAD_DB`) — a crowd is a
steady murmur, while one talker swings 15–25 dB between syllables and pauses; **noise** when
the VAD does not hear it as speech; **talker** when it does and the level swings (the caller
spoke from the first instant). In babble the segmenter gates on level both ways
(:meth:`NoiseFloor.loud`, :meth:`NoiseFloor.quiet`): speech must rise well above the noise to
start an utterance, and counts as a pause once it is back near it (hysteresis). Measured on
the noisy set: babble-only windows reach at most +4.8 dB over their median (p99 +3.8), the
caller's voiced windows at 10 dB SNR +12.4 dB (median), at 5 dB SNR +7.8 dB. In noise the VAD
decides and the level only vetoes onsets quieter than the noise's loud moments (street
recordings have bursts Silero scores up to 0.69). 60 s of each noise alone, at 20, 10 and
5 dB SNR levels and five excerpts each, start no utterance.

Every quantity is a count of 32 ms windows of audio, never wall time.
"""

from __future__ import annotations

from collections import deque
from typing import Final, Literal

import attrs
import numpy as np

#: Windows (32 ms each) the level is averaged over: 256 ms, about a syllable.
SMOOTH_WINDOWS: Final = 8
#: Pre-emphasis coefficient of the level measure (first difference, as in speech coding).
PRE_EMPHASIS: Final = 0.95
#: The noise counts as voice-like when at least this fraction of its windows reach the VAD's
#: silence threshold. Babble: 99 % of windows once Silero has settled, but Silero takes up to
#: ~400 ms to rise on it from a fresh state, so 45 % of the first 640 ms; pink and street
#: noise: under 1 %.
VOICED_FRACTION: Final = 0.3
#: … and its level's 95th percentile is at most this far above its median, dB (babble:
#: 3–4.5 dB; a single talker: over 10 dB).
STEADY_SPREAD_DB: Final = 8.0
#: … and its 5th percentile within this of the 95th, dB: babble has no drop-outs (640 ms of
#: it: at most 12.4 dB; 3 s: 10.3 dB), a talker's first 640 ms usually do (the pause before
#: the first word, or between two: 27–56 dB in ``tests/data/human``). Speech without a
#: pause from the stream's very first sample (``forig``: 9.9 dB) still looks like babble;
#: on a call the line is open for the greeting before the caller speaks.
STEADY_RANGE_DB: Final = 13.0
#: A history the VAD hears as speech whose level is not steady is a talker (the caller) only
#: if the VAD's median probability over it reaches this; else it is noise (a bus pulling
#: away, which Silero scores 0.2–0.55 for a second: median 0.34; a talker: 0.8–0.9).
SPEECHLIKE_MEDIAN: Final = 0.5
#: When the noise is voice-like, speech must also be this far above its median to start an
#: utterance, and anything under half of it is a pause, dB. The percentiles of a short
#: history run low (640 ms of babble: 95th percentile 1.8 dB over the median, loudest 1.9 dB;
#: 3 s: 3.0 and 4.8 dB); the caller's voiced windows are +7.8 dB (median) over babble at
#: 5 dB SNR, +12.4 dB at 10 dB.
MIN_OVER_MEDIAN_DB: Final = 6.0
#: In the ``"noise"`` regime the level statistics are taken over the windows the VAD calls
#: silent when there are at least this many (192 ms): the caller's first words, heard while
#: the history was learnt (a clip whose speech starts 240 ms in), are not the noise.
MIN_SILENT: Final = 6
#: Extra onset margin while the history is short, dB, shrinking linearly to 0 as it fills:
#: babble swelled 6.6 dB over the median of its first 640 ms within the next 100 ms.
SHORT_HISTORY_DB: Final = 4.0
#: A window this far over the noise's median level is something else than the noise, dB
#: (the segmenter joins such windows before an onset to the utterance; pink noise's level
#: stays within 1.1 dB of its median 95 % of the time).
OVER_NOISE_DB: Final = 2.0
#: Least history before the noise is judged at all, windows (640 ms).
MIN_HISTORY: Final = 20
#: Level of digital silence, dBFS (the floor of the measure).
SILENCE_DB: Final = -100.0


class LevelMeter:
    """The smoothed, pre-emphasised level of a stream of 16 kHz windows, dBFS."""

    def __init__(self) -> None:
        self._last = 0.0
        self._powers: deque[float] = deque(maxlen=SMOOTH_WINDOWS)

    def level(self, window: np.ndarray) -> float:
        """Add one window; the mean power of the last :data:`SMOOTH_WINDOWS`, dBFS."""
        x = window.astype(np.float64, copy=False)
        emphasised = np.empty_like(x)
        emphasised[0] = x[0] - PRE_EMPHASIS * self._last
        emphasised[1:] = x[1:] - PRE_EMPHASIS * x[:-1]
        self._last = float(x[-1])
        self._powers.append(float(np.mean(emphasised**2)))
        mean = sum(self._powers) / len(self._powers)
        return max(SILENCE_DB, 10 * np.log10(mean)) if mean > 0 else SILENCE_DB


def level_spread_db(audio: np.ndarray, window: int = 512) -> float:
    """How far the loud moments of ``audio`` stand over its quiet ones: the 90th minus the
    10th percentile of its pre-emphasised ``window``-sample levels (32 ms at 16 kHz), dB.

    A rough SNR of a stretch of a call that holds speech and pauses. The clips of
    ``tests/data/human`` (8 kHz μ-law, resampled): clean, 17-52 dB; mixed with pink noise at
    20 / 10 / 5 dB SNR, 15-22 / 6-12 / 3-8 dB; with babble or street noise (whose low
    frequencies pre-emphasis discounts) at 5 dB SNR, 11-19 dB. 0.0 for audio shorter than
    two windows. About 1 ms of CPU for 30 s of audio.
    """
    count = len(audio) // window
    if count < 2:
        return 0.0
    x = np.asarray(audio[: count * window], dtype=np.float32)
    emphasised = np.empty_like(x)
    emphasised[0] = x[0]
    np.subtract(x[1:], np.float32(PRE_EMPHASIS) * x[:-1], out=emphasised[1:])
    framed = emphasised.reshape(count, window)
    power = np.einsum("ij,ij->i", framed, framed, dtype=np.float64) / window
    levels = 10 * np.log10(np.maximum(power, 10 ** (SILENCE_DB / 10)))
    low, high = np.percentile(levels, [10, 90])
    return float(high - low)


Regime = Literal["learning", "noise", "babble", "talker"]


@attrs.frozen
class _Stats:
    median: float
    p95: float
    peak: float
    regime: Regime


class NoiseFloor:
    """The noise of one stream, from the windows heard while the caller is silent.

    The history is judged as one of four regimes (:attr:`regime`):

    * ``"learning"`` — under :data:`MIN_HISTORY` windows heard: no judgement, no gate.
    * ``"noise"`` — the VAD hears under :data:`VOICED_FRACTION` of it as speech, or its
      level swings but the VAD's median probability is under :data:`SPEECHLIKE_MEDIAN` (a
      quiet line, hiss, pink or street noise): the VAD decides, but an onset must also be half of
      ``onset_margin_db`` over the noise's 95th percentile (street noise has bursts Silero
      scores 0.3–0.6: a horn, brakes, a bus pulling away).
    * ``"babble"`` — the VAD hears it as speech and its level is steady (95th percentile
      within :data:`STEADY_SPREAD_DB` of the median, :data:`STEADY_RANGE_DB` of the 5th):
      the level decides both onsets
      (:attr:`onset_db`) and pauses (:attr:`pause_db`).
    * ``"talker"`` — the VAD hears speech (median probability at least
      :data:`SPEECHLIKE_MEDIAN`) and the level swings: the caller spoke while this
      was learnt (from the first instant of the stream, or a start held back): no gate.

    Args:
        history_ms: how much recent noise is kept, ms of audio.
        onset_margin_db: how far above the noise's 95th-percentile level speech must rise to
            start an utterance, dB.
        silence_threshold: the VAD probability under which a window is silence (the
            segmenter's), for judging whether the noise sounds like speech.
        speech_threshold: the VAD probability at which a window is voiced (the
            segmenter's ``threshold``).
        window_ms: audio per window, ms.
    """

    def __init__(
        self,
        *,
        history_ms: int = 3000,
        onset_margin_db: float = 2.0,
        silence_threshold: float = 0.15,
        speech_threshold: float = 0.3,
        window_ms: int = 32,
    ) -> None:
        size = max(MIN_HISTORY, history_ms // window_ms)
        self._levels: deque[float] = deque(maxlen=size)
        self._probabilities: deque[float] = deque(maxlen=size)
        self._margin = onset_margin_db
        self._silence_threshold = silence_threshold
        self._speech_threshold = speech_threshold
        self._stats: _Stats | None = None

    def observe(self, level_db: float, probability: float) -> None:
        """Add a window heard outside the caller's speech (its level, its VAD probability).

        In the ``"noise"`` regime a window the VAD scores at ``speech_threshold`` or more is
        left out: there the VAD is reliable, so it is most likely the caller's speech that
        did not (yet) clear :attr:`onset_db`, and learning it would raise the gate to the
        caller's own level (measured: a soft first word in street noise at 10 dB lifted the
        95th percentile by 7 dB and the whole sentence was lost). A louder window than
        :attr:`onset_db` is learnt as :attr:`onset_db`: a click or a bang moves the gate by
        at most the margin, while noise that stays louder raises it step by step (by the
        margin each time 5 % of the history is at the gate).
        """
        if self.regime == "noise":
            if probability >= self._speech_threshold:
                return
            level_db = min(level_db, self.onset_db)
        self._levels.append(level_db)
        self._probabilities.append(probability)
        self._stats = None

    def clear(self) -> None:
        """Forget the noise (an unrelated stream)."""
        self._levels.clear()
        self._probabilities.clear()
        self._stats = None

    def _compute(self) -> _Stats:
        if self._stats is None:
            if len(self._levels) < MIN_HISTORY:
                self._stats = _Stats(SILENCE_DB, SILENCE_DB, SILENCE_DB, "learning")
            else:
                levels = np.fromiter(self._levels, dtype=np.float64)
                p5, median, p95 = (float(v) for v in np.percentile(levels, [5, 50, 95]))
                probabilities = np.fromiter(self._probabilities, dtype=np.float64)
                voiced = float(np.mean(probabilities >= self._silence_threshold))
                regime: Regime = "noise"
                if voiced >= VOICED_FRACTION:
                    if p95 - median <= STEADY_SPREAD_DB and p95 - p5 <= STEADY_RANGE_DB:
                        regime = "babble"
                    elif np.median(probabilities) >= SPEECHLIKE_MEDIAN:
                        regime = "talker"
                silent = probabilities < self._silence_threshold
                if regime == "noise" and silent.sum() >= MIN_SILENT:
                    # What the VAD heard as speech while this was learnt (the caller's first
                    # words) is not the noise.
                    levels = levels[silent]
                    p5, median, p95 = (float(v) for v in np.percentile(levels, [5, 50, 95]))
                self._stats = _Stats(median, p95, float(levels.max()), regime)
        return self._stats

    @property
    def ready(self) -> bool:
        """True once :data:`MIN_HISTORY` windows have been heard: until then the segmenter
        holds back onsets (speech from the first instant starts 640 ms in, its audio kept),
        so noise on the line from the start is judged before it can start an utterance."""
        return len(self._levels) >= MIN_HISTORY

    @property
    def regime(self) -> Regime:
        """What the history sounds like (see the class docstring)."""
        return self._compute().regime

    @property
    def floor_db(self) -> float:
        """Median level of the noise, dBFS (:data:`SILENCE_DB` until enough is heard)."""
        return self._compute().median

    @property
    def ceiling_db(self) -> float:
        """95th-percentile level of the noise, dBFS."""
        return self._compute().p95

    @property
    def voice_like(self) -> bool:
        """True when the VAD hears the noise as speech but its level is steady (babble)."""
        return self.regime == "babble"

    @property
    def onset_db(self) -> float:
        """The level a window needs to count towards an onset, dBFS. ``"noise"``: the 95th
        percentile plus half of ``onset_margin_db`` (the full margin lost soft words in
        street noise at 5 dB SNR: 29.8 % WER against 22.6 %); ``"babble"``: the 95th
        percentile plus the margin, the loudest noise heard plus half of it, or the median
        plus :data:`MIN_OVER_MEDIAN_DB`, whichever is highest; both plus up to
        :data:`SHORT_HISTORY_DB` while the history is filling. Otherwise :data:`SILENCE_DB`
        (no gate)."""
        stats = self._compute()
        if stats.regime not in ("noise", "babble"):
            return SILENCE_DB
        capacity = self._levels.maxlen or 1
        short = SHORT_HISTORY_DB * max(0.0, 1 - len(self._levels) / capacity)
        onset = stats.p95 + self._margin / 2
        if stats.regime == "babble":
            onset = max(
                stats.p95 + self._margin,
                stats.peak + self._margin / 2,
                stats.median + MIN_OVER_MEDIAN_DB,
            )
        return onset + short

    @property
    def pause_db(self) -> float:
        """Under this level a window is a pause in ``"babble"``, whatever the VAD says, dBFS:
        the 95th percentile plus half of ``onset_margin_db``, or the median plus half of
        :data:`MIN_OVER_MEDIAN_DB`, whichever is higher (hysteresis under
        :attr:`onset_db`). Otherwise :data:`SILENCE_DB` (the VAD alone ends speech)."""
        stats = self._compute()
        if stats.regime != "babble":
            return SILENCE_DB
        return max(stats.p95 + self._margin / 2, stats.median + MIN_OVER_MEDIAN_DB / 2)

    def heard_over(self, level_db: float) -> bool:
        """Is a window at ``level_db`` audibly over the noise (something other than the noise
        is there)? ``"noise"``: over the median plus :data:`OVER_NOISE_DB` (the median, not
        the 95th percentile: the tracker may have learnt a soft word the VAD missed);
        ``"babble"``: at or over :attr:`pause_db`; otherwise never (no judgement)."""
        stats = self._compute()
        if stats.regime == "noise":
            return level_db >= stats.median + OVER_NOISE_DB
        if stats.regime == "babble":
            return level_db >= self.pause_db
        return False

    def loud(self, level_db: float) -> bool:
        """May a window at ``level_db`` count towards an onset (:attr:`onset_db`)?"""
        return level_db >= self.onset_db

    def quiet(self, level_db: float) -> bool:
        """Is a window at ``level_db`` a pause, whatever the VAD says (:attr:`pause_db`)?"""
        return level_db < self.pause_db
