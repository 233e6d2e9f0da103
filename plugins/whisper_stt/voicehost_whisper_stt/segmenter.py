"""Endpointing: cut a caller's 16 kHz audio into utterances with a VAD, in audio time.

The :class:`Segmenter` is a pure state machine over 32 ms VAD windows. It never looks at a
clock: every decision counts windows of audio, so feeding a recording faster than real time
gives exactly the decisions a live call would.

* **Onset** — ``min_speech_ms`` of consecutive windows above the silence threshold
  (``threshold - 0.15``), at least one of them at or above ``threshold``, start an utterance
  (:class:`SpeechStarted`, which drives barge-in). A single loud click does not; Silero gives
  stationary noise (hiss, hum, tones) probabilities below 0.05. Requiring every window to
  reach ``threshold`` delayed some onsets by up to half a second (soft starts like "Is there").
  The rule here detects Piper test speech a median 6 ms (p90 70 ms) after its first loud
  10 ms, plus the ``min_speech_ms`` wait.
  The utterance's audio begins ``pre_roll_ms`` before the first voiced window, so the soft
  start of a word (an unvoiced "s", "f", "h") reaches Whisper.
* **Interim** — every ``partial_interval_ms`` of audio while the caller speaks (not during a
  pause), :class:`PartialDue` carries a snapshot of the utterance so far.
* **Speculation** — once a pause has lasted ``post_roll_ms``, the utterance's final audio is
  known if the pause goes on: :class:`EndLikely` carries it, so the final decode can run
  during the rest of the wait; :class:`SpeechResumed` voids it if the caller speaks again.
* **Endpoint** — after ``min_silence_ms`` below the silence threshold (``threshold - 0.15``,
  Silero's hysteresis), :class:`UtteranceEnded` carries the utterance up to ``post_roll_ms``
  after its last voiced window. Shorter pauses (between sentences of a monologue) stay inside
  the utterance.
* **Line noise** — with ``noise_gate``, a
  :class:`~voicehost_whisper_stt.noise_floor.NoiseFloor` learns the line's noise from the
  windows heard outside the caller's speech; no onset fires before it has judged the first
  640 ms (speech there is kept and starts then). When the noise is voice-like to the VAD
  (babble), a window must also be well over the noise's level to count towards an onset
  (``onset_db``), and any window back near it counts as silence (``pause_db``), whatever the
  VAD says; for other noise the VAD decides, and a window quieter than the noise's loud
  moments only cannot start an onset (street bursts); when the history holds the caller's
  own voice, the VAD alone decides, as above. A voiced run that ends without an onset is
  learnt as noise. At an onset, the windows just before it that are audibly over the noise
  (:meth:`~voicehost_whisper_stt.noise_floor.NoiseFloor.heard_over`: a soft first word the
  VAD scored silent in loud noise) join the utterance, up to :data:`LEAD_IN_MS` back and
  across quieter gaps shorter than :data:`LEAD_IN_GAP_MS`, with the pre-roll before them.
* **Length cap** — an utterance reaching ``max_utterance_s`` is cut at its quietest point in
  the second half (lowest speech probability over ~160 ms) and finalised; the rest continues
  as the next utterance, so no audio is dropped at the cut.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import numpy as np

from voicehost_whisper_stt.events import (
    EndLikely,
    EndReason,
    Event,
    PartialDue,
    SpeechResumed,
    SpeechStarted,
    UtteranceEnded,
)
from voicehost_whisper_stt.noise_floor import LevelMeter, NoiseFloor
from voicehost_whisper_stt.vad import WINDOW, WINDOW_MS

#: At most this much audio before an onset is joined to the utterance when its level is over
#: the line's noise (speech the VAD missed), ms.
LEAD_IN_MS = 1000
#: … across quieter gaps shorter than this (between words), ms.
LEAD_IN_GAP_MS = 250
#: The level of windows whose level is unknown (never over the noise), dBFS.
NO_LEVEL = -200.0


def _windows(ms: float) -> int:
    return max(1, math.ceil(ms / WINDOW_MS))


class Segmenter:
    """Turns a stream of float32 16 kHz samples into :data:`Event` s (see module docstring).

    Args:
        probability: the VAD, called once per 512-sample window in order, returning the
            speech probability 0–1 (a :class:`~voicehost_whisper_stt.vad.StreamingVad`'s
            ``window_probability`` in production).
        threshold: speech probability at or above which a window is voiced.
        min_speech_ms, min_silence_ms, partial_interval_ms (0 = none), pre_roll_ms,
        post_roll_ms: audio durations, ms.
        max_utterance_s: length cap, seconds.
        noise_gate: track the stream's noise and gate on level when it is voice-like (see
            the module docstring); False: the VAD alone decides.
        noise_history_ms: noise kept by the tracker, ms of audio.
        noise_onset_margin_db: level over the voice-like noise's 95th percentile that
            speech needs to start an utterance, dB.
    """

    def __init__(
        self,
        probability: Callable[[np.ndarray], float],
        *,
        threshold: float = 0.5,
        min_speech_ms: int = 96,
        min_silence_ms: int = 500,
        partial_interval_ms: int = 1000,
        pre_roll_ms: int = 300,
        post_roll_ms: int = 250,
        max_utterance_s: float = 20.0,
        noise_gate: bool = True,
        noise_history_ms: int = 3000,
        noise_onset_margin_db: float = 2.0,
    ) -> None:
        self._probability = probability
        self._threshold = threshold
        self._silence_threshold = max(threshold - 0.15, 0.01)
        self._noise = (
            NoiseFloor(
                history_ms=noise_history_ms,
                onset_margin_db=noise_onset_margin_db,
                silence_threshold=self._silence_threshold,
                speech_threshold=threshold,
                window_ms=WINDOW_MS,
            )
            if noise_gate
            else None
        )
        self._meter = LevelMeter() if noise_gate else None
        self._candidates: list[tuple[float, float]] = []  # (level, p) of the voiced run
        self._onset = _windows(min_speech_ms)
        self._silence = _windows(min_silence_ms)
        self._partial = _windows(partial_interval_ms) if partial_interval_ms > 0 else 0
        self._post_roll = math.ceil(post_roll_ms / WINDOW_MS)
        self._max = max(_windows(max_utterance_s * 1000), 2 * self._silence)
        self._pending = np.zeros(0, dtype=np.float32)
        self._n = 0  # windows processed so far
        self._voiced_run = 0
        self._run_peak = 0.0
        self._pre_roll = math.ceil(pre_roll_ms / WINDOW_MS)
        self._lead_gap = _windows(LEAD_IN_GAP_MS)
        # Enough for the pre-roll plus a voiced run that took a while to reach ``threshold``,
        # or speech the VAD missed before it (see _lead_in): (window, p, level dBFS).
        self._history: deque[tuple[np.ndarray, float, float]] = deque(
            maxlen=self._pre_roll + self._onset + _windows(LEAD_IN_MS)
        )
        self._utterance = 0
        self._in_speech = False
        self._windows: list[np.ndarray] = []
        self._probs: list[float] = []
        self._start_window = 0  # global index of self._windows[0]
        self._silence_start: int | None = None  # index into self._windows
        self._last_voiced = 0  # index into self._windows, exclusive end
        self._since_partial = 0
        self._likely_sent = False

    @property
    def in_speech(self) -> bool:
        """True between an onset and the end of that utterance."""
        return self._in_speech

    @property
    def audio_ms(self) -> int:
        """Audio time processed so far, ms (whole windows only)."""
        return self._n * WINDOW_MS

    def push(self, samples: np.ndarray) -> list[Event]:
        """Add float32 16 kHz samples (any count); returns the events they complete, in order."""
        if len(self._pending):
            samples = np.concatenate([self._pending, samples])
        whole = len(samples) - len(samples) % WINDOW
        events: list[Event] = []
        for start in range(0, whole, WINDOW):
            self._step(samples[start : start + WINDOW], events)
        self._pending = samples[whole:].astype(np.float32, copy=True)
        return events

    def flush(self) -> list[Event]:
        """End of stream: finalise an utterance in progress (``reason="flush"``)."""
        events: list[Event] = []
        if len(self._pending):
            tail = np.zeros(WINDOW, dtype=np.float32)
            tail[: len(self._pending)] = self._pending
            self._pending = np.zeros(0, dtype=np.float32)
            self._step(tail, events)
        if self._in_speech:
            end = len(self._windows)
            if self._silence_start is not None:
                end = min(end, self._silence_start + self._post_roll)
            events.append(self._end(end, "flush"))
        return events

    # --- state machine -------------------------------------------------------------------

    def _step(self, window: np.ndarray, events: list[Event]) -> None:
        p = self._probability(window)
        self._n += 1
        loud, quiet, level = True, False, 0.0
        if self._meter is not None and self._noise is not None:
            level = self._meter.level(window)
            loud, quiet = self._noise.loud(level), self._noise.quiet(level)
        if not self._in_speech:
            self._history.append((window, p, level))
            if p >= self._silence_threshold and loud:
                self._voiced_run += 1
                self._run_peak = max(self._run_peak, p)
                self._hear_candidate(level, p)
            else:
                self._voiced_run, self._run_peak = 0, 0.0
                self._hear_noise(level, p)
            ready = self._noise is None or self._noise.ready
            if self._voiced_run >= self._onset and self._run_peak >= self._threshold and ready:
                self._begin(events)
            return
        self._windows.append(window)
        self._probs.append(p)
        self._since_partial += 1
        if p >= self._threshold and not quiet:
            if self._likely_sent:
                self._likely_sent = False
                events.append(SpeechResumed(self._utterance))
            self._silence_start = None
            self._last_voiced = len(self._windows)
        elif (p < self._silence_threshold or quiet) and self._silence_start is None:
            self._silence_start = len(self._windows) - 1
        if self._silence_start is not None and not self._likely_sent:
            end = self._silence_start + self._post_roll
            if len(self._windows) == max(end, self._silence_start + 1) and (
                len(self._windows) - self._silence_start < self._silence
            ):
                self._likely_sent = True
                events.append(
                    EndLikely(
                        self._utterance,
                        np.concatenate(self._windows[:end]),
                        self.audio_ms,
                        self._start_window * WINDOW_MS,
                    )
                )
        if (
            self._silence_start is not None
            and len(self._windows) - self._silence_start >= self._silence
        ):
            end = min(len(self._windows), self._silence_start + self._post_roll)
            events.append(self._end(end, "silence"))
        elif len(self._windows) >= self._max:
            self._cut(events)
        elif (
            self._partial
            and self._since_partial >= self._partial
            and self._silence_start is None  # nothing new to hear during a pause
        ):
            self._since_partial = 0
            events.append(PartialDue(self._utterance, np.concatenate(self._windows), self.audio_ms))

    def _hear_noise(self, level: float, p: float) -> None:
        """A window outside speech that cannot start it: noise, and so is a voiced run that
        ended without an onset."""
        if self._noise is None:
            return
        for held in self._candidates:
            self._noise.observe(*held)
        self._candidates.clear()
        self._noise.observe(level, p)

    def _hear_candidate(self, level: float, p: float) -> None:
        """A window that may be the start of the caller's speech: held back from the noise
        tracker until the run ends without an onset (then it was noise), dropped if it
        becomes one. Before the tracker is ready it learns from every window."""
        if self._noise is None:
            return
        if self._noise.ready:
            self._candidates.append((level, p))
            return
        self._noise.observe(level, p)
        if self._noise.ready and not self._noise.loud(level):
            # The run heard while learning was the noise itself: it starts nothing. (A run
            # over the judged noise — the caller's first word — goes on, its start kept.)
            self._voiced_run, self._run_peak = 0, 0.0

    def _begin(self, events: list[Event]) -> None:
        self._candidates.clear()
        self._in_speech = True
        self._utterance += 1
        keep = min(len(self._history), self._lead_in() + self._voiced_run + self._pre_roll)
        recent = list(self._history)[-keep:]
        self._windows = [window for window, _, _ in recent]
        self._probs = [p for _, p, _ in recent]
        self._start_window = self._n - len(self._windows)
        self._history.clear()
        self._silence_start = None
        self._last_voiced = len(self._windows)
        self._since_partial = 0
        self._likely_sent = False
        first = self._n - self._voiced_run
        events.append(SpeechStarted(self._utterance, first * WINDOW_MS))

    def _lead_in(self) -> int:
        """Windows just before the voiced run that are over the line's noise
        (:meth:`NoiseFloor.heard_over`) although the VAD scored them silent: in loud noise
        Silero misses a soft first word (pink noise at 5 dB SNR: "It's easy to" scored
        0.00-0.09 for 550 ms, the level 2-6 dB over the noise). They join the utterance,
        with the pre-roll before them."""
        if self._noise is None:
            return 0
        held = list(self._history)[: len(self._history) - self._voiced_run]
        count = gap = 0
        for back, (_, _, level) in enumerate(reversed(held), 1):
            if self._noise.heard_over(level):
                count, gap = back, 0
            else:
                gap += 1
                if gap >= self._lead_gap:  # a pause between words is shorter
                    break
        return count

    def _end(self, end: int, reason: EndReason) -> UtteranceEnded:
        event = UtteranceEnded(
            utterance=self._utterance,
            audio=np.concatenate(self._windows[:end]),
            start_ms=self._start_window * WINDOW_MS,
            speech_end_ms=(self._start_window + self._last_voiced) * WINDOW_MS,
            endpoint_ms=self.audio_ms,
            reason=reason,
        )
        self._in_speech = False
        self._voiced_run, self._run_peak = 0, 0.0
        self._history.clear()
        keep = self._pre_roll + self._onset
        self._history.extend(
            (window, p, NO_LEVEL)
            for window, p in zip(self._windows[-keep:], self._probs[-keep:], strict=True)
        )
        self._windows, self._probs = [], []
        self._silence_start = None
        self._likely_sent = False
        return event

    def _cut(self, events: list[Event]) -> None:
        """Finalise the first part of an over-long utterance at its quietest point."""
        probs = np.asarray(self._probs)
        smooth = np.convolve(probs, np.ones(5) / 5, mode="same")
        low = len(probs) // 2
        high = max(low + 1, len(probs) - self._onset)
        cut = low + int(np.argmin(smooth[low:high]))
        last_voiced = self._last_voiced
        self._last_voiced = min(last_voiced, cut)
        events.append(
            UtteranceEnded(
                utterance=self._utterance,
                audio=np.concatenate(self._windows[:cut]),
                start_ms=self._start_window * WINDOW_MS,
                speech_end_ms=(self._start_window + self._last_voiced) * WINDOW_MS,
                endpoint_ms=self.audio_ms,
                reason="max_length",
            )
        )
        # The caller is still speaking: the rest goes on as the next utterance.
        self._utterance += 1
        self._windows = self._windows[cut:]
        self._probs = self._probs[cut:]
        self._start_window += cut
        self._last_voiced = max(0, last_voiced - cut)
        if self._silence_start is not None:
            self._silence_start = max(0, self._silence_start - cut)
        self._since_partial = 0
        self._likely_sent = False  # a pending speculation no longer matches the audio
