"""The noise tracker and level gate (``voicehost_whisper_stt.noise_floor``) on made-up levels
and a stand-in VAD: every verdict is known, no model is loaded."""

from __future__ import annotations

import math

import numpy as np
import pytest

from voicehost_whisper_stt.events import SpeechStarted, UtteranceEnded
from voicehost_whisper_stt.noise_floor import (
    MIN_HISTORY,
    MIN_OVER_MEDIAN_DB,
    OVER_NOISE_DB,
    SILENCE_DB,
    LevelMeter,
    NoiseFloor,
)
from voicehost_whisper_stt.segmenter import Segmenter
from voicehost_whisper_stt.vad import WINDOW, WINDOW_MS


def filled(levels: list[float], probability: float) -> NoiseFloor:
    floor = NoiseFloor(history_ms=3000, onset_margin_db=2.0)
    for level in levels:
        floor.observe(level, probability)
    return floor


def test_no_judgement_and_no_gate_while_learning() -> None:
    floor = filled([-40.0] * (MIN_HISTORY - 1), 0.9)
    assert not floor.ready
    assert floor.regime == "learning"
    assert floor.loud(-90.0) and not floor.quiet(-90.0)


def test_quiet_noise_gates_onsets_just_over_its_loud_moments() -> None:
    rng = np.random.default_rng(1)
    floor = filled(list(-50.0 + rng.uniform(-1, 1, 94)), 0.02)
    assert floor.regime == "noise"
    assert floor.onset_db == pytest.approx(floor.ceiling_db + 1.0)
    assert not floor.loud(floor.ceiling_db + 0.5)
    assert floor.loud(floor.ceiling_db + 1.5)
    assert not floor.quiet(-90.0)  # the VAD alone ends speech in this regime


def test_noise_regime_does_not_learn_the_callers_voice_or_a_click() -> None:
    floor = filled([-50.0] * 94, 0.02)
    gate = floor.onset_db
    for _ in range(30):
        floor.observe(-30.0, 0.9)  # voiced to the VAD: the caller, not noise
    assert floor.onset_db == gate
    for _ in range(10):
        floor.observe(-20.0, 0.02)  # a 320 ms bang the VAD ignores: learnt at the gate
    assert floor.onset_db <= gate + 2.0  # 30 dB louder, yet the gate moved by 2 dB at most


def test_babble_is_steady_voice_like_noise_and_gates_both_ways() -> None:
    rng = np.random.default_rng(2)
    floor = filled(list(-40.0 + rng.uniform(-2, 2, 94)), 0.9)
    assert floor.regime == "babble" and floor.voice_like
    assert floor.onset_db >= floor.floor_db + MIN_OVER_MEDIAN_DB
    assert not floor.loud(floor.floor_db + 4.0)  # a swell of the crowd
    assert floor.loud(floor.floor_db + 10.0)  # the caller, nearer the microphone
    assert floor.quiet(floor.floor_db + 1.0)  # back to the crowd: a pause
    assert not floor.quiet(floor.floor_db + 10.0)


def test_a_talker_in_the_history_turns_the_gate_off() -> None:
    levels = [-25.0 if i % 3 == 0 else -50.0 for i in range(40)]  # syllables and pauses
    floor = filled(levels, 0.9)
    assert floor.regime == "talker"
    assert floor.loud(-90.0) and not floor.quiet(-90.0)
    assert floor.onset_db == SILENCE_DB


def test_level_meter_reads_silence_and_a_steady_tone() -> None:
    meter = LevelMeter()
    assert meter.level(np.zeros(WINDOW, dtype=np.float32)) == SILENCE_DB
    t = np.arange(WINDOW * 10) / 16_000
    tone = (0.1 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    levels = [meter.level(tone[i : i + WINDOW]) for i in range(0, len(tone), WINDOW)]
    # 1 kHz at amplitude 0.1 (−23 dBFS RMS) through the 0.95 first difference: +~-14 dB gain
    # at 1 kHz relative to DC … the level settles and stays put.
    assert max(levels[-3:]) - min(levels[-3:]) < 0.1
    assert -40 < levels[-1] < -10


# --- the segmenter with a stand-in VAD -------------------------------------------------


def windows(amplitudes: list[float], seed: int = 3) -> np.ndarray:
    """Noise-like windows at the given RMS amplitudes (one per 32 ms window)."""
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [(a * rng.standard_normal(WINDOW)).astype(np.float32) for a in amplitudes]
    )


def segment(audio: np.ndarray, probability: float) -> list[object]:
    seg = Segmenter(lambda _w: probability, threshold=0.3, partial_interval_ms=0)
    return seg.push(audio) + seg.flush()


def test_babble_alone_starts_nothing_and_a_nearer_voice_does() -> None:
    rng = np.random.default_rng(4)
    crowd = list(0.01 * 10 ** (rng.uniform(-2, 2, 625) / 20))  # 20 s, ±2 dB
    assert segment(windows(crowd), 0.9) == []
    caller = crowd[:200] + [0.05] * 40 + crowd[:100]  # +14 dB for 1.3 s, then the crowd
    events = segment(windows(caller), 0.9)
    starts = [e for e in events if isinstance(e, SpeechStarted)]
    ends = [e for e in events if isinstance(e, UtteranceEnded)]
    assert len(starts) == 1 and 200 * WINDOW_MS <= starts[0].at_ms <= 205 * WINDOW_MS
    assert len(ends) == 1 and ends[0].reason == "silence"
    assert ends[0].speech_end_ms <= 250 * WINDOW_MS


def test_noise_gate_off_is_the_vad_alone() -> None:
    seg = Segmenter(lambda _w: 0.9, threshold=0.3, partial_interval_ms=0, noise_gate=False)
    events = seg.push(windows([0.01] * 10))
    assert any(isinstance(e, SpeechStarted) for e in events)


def test_over_the_noise_means_over_its_median_or_in_babble_at_the_pause_level() -> None:
    noise = filled([-50.0] * 94, 0.02)
    assert noise.heard_over(noise.floor_db + OVER_NOISE_DB)
    assert not noise.heard_over(noise.floor_db + OVER_NOISE_DB - 0.5)
    rng = np.random.default_rng(2)
    babble = filled(list(-40.0 + rng.uniform(-2, 2, 94)), 0.9)
    assert babble.heard_over(babble.pause_db) and not babble.heard_over(babble.pause_db - 0.5)
    # no judgement while learning, and none when the history is the caller's own voice
    assert not filled([-40.0] * 5, 0.02).heard_over(0.0)
    talker = filled([-60.0, -20.0] * 47, 0.9)
    assert talker.regime == "talker" and not talker.heard_over(0.0)


def _scripted(probabilities: list[float]):
    """A stand-in VAD that gives each successive window the next of ``probabilities``."""
    queue = iter(probabilities)
    return lambda _window: next(queue, 0.0)


def test_speech_the_vad_missed_just_before_an_onset_joins_the_utterance() -> None:
    # 3.2 s of quiet noise; a soft first word 10 dB over it that the VAD scores 0 for
    # 480 ms; then speech it hears for 960 ms; then the noise again
    amplitudes = [0.01] * 100 + [0.03] * 15 + [0.03] * 30 + [0.01] * 40
    probabilities = [0.0] * 115 + [0.9] * 30 + [0.0] * 40
    pre_roll = math.ceil(300 / WINDOW_MS)
    for gate, first in ((True, 100), (False, 115)):
        seg = Segmenter(
            _scripted(probabilities), threshold=0.3, partial_interval_ms=0, noise_gate=gate
        )
        events = seg.push(windows(amplitudes)) + seg.flush()
        (end,) = [e for e in events if isinstance(e, UtteranceEnded)]
        (start,) = [e for e in events if isinstance(e, SpeechStarted)]
        assert start.at_ms == 115 * WINDOW_MS  # the onset is the VAD's in both cases
        # with the gate the loud stretch before it is kept, with the pre-roll before that
        assert end.start_ms == (first - pre_roll) * WINDOW_MS, gate


def test_the_lead_in_stops_at_a_pause_longer_than_one_between_words() -> None:
    # a loud noise burst, 640 ms of the quiet noise, then the speech: the burst stays out
    amplitudes = [0.01] * 100 + [0.03] * 10 + [0.01] * 20 + [0.03] * 30 + [0.01] * 40
    probabilities = [0.0] * 130 + [0.9] * 30 + [0.0] * 40
    seg = Segmenter(_scripted(probabilities), threshold=0.3, partial_interval_ms=0)
    events = seg.push(windows(amplitudes)) + seg.flush()
    (end,) = [e for e in events if isinstance(e, UtteranceEnded)]
    assert end.start_ms >= (130 - math.ceil(300 / WINDOW_MS)) * WINDOW_MS
