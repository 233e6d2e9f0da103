"""Endpointing state machine, with a stand-in VAD so every window's verdict is known.

Audio is built from 32 ms windows: ``x`` voiced (amplitude 0.5), ``.`` silent (0.0),
``~`` a dip in the hysteresis band (probability between the silence and speech thresholds).
"""

from __future__ import annotations

import numpy as np
import pytest

from voicehost_whisper_stt.events import EndLikely, PartialDue, SpeechStarted, UtteranceEnded
from voicehost_whisper_stt.segmenter import Segmenter
from voicehost_whisper_stt.vad import WINDOW, WINDOW_MS

LEVELS = {"x": 0.5, ".": 0.0, "~": 0.2}


def fake_probability(window: np.ndarray) -> float:
    """0.9 for loud, 0.4 for the dip (between 0.35 and 0.5), 0.0 for silence."""
    peak = float(np.abs(window).max())
    return 0.9 if peak >= 0.4 else 0.4 if peak >= 0.1 else 0.0


def build(pattern: str) -> np.ndarray:
    """Samples for ``pattern``; each window also carries a tiny ramp so slices are unique."""
    out = np.concatenate([np.full(WINDOW, LEVELS[c], dtype=np.float32) for c in pattern])
    return out + np.linspace(0, 0.01, len(out), dtype=np.float32)


def make(**overrides: object) -> Segmenter:
    options: dict = {
        "threshold": 0.5,
        "min_speech_ms": 96,
        "min_silence_ms": 320,
        "partial_interval_ms": 0,
        "pre_roll_ms": 96,
        "post_roll_ms": 64,
        "max_utterance_s": 20.0,
        # The stand-in VAD's windows are not real audio: the level gate for voice-like
        # noise (tested in test_noisy_gate.py) stays out of these state-machine tests.
        "noise_gate": False,
    }
    options.update(overrides)
    return Segmenter(fake_probability, **options)  # type: ignore[arg-type]


def w(n: int) -> int:
    """Samples in ``n`` windows."""
    return n * WINDOW


def test_short_blip_does_not_start_speech() -> None:
    seg = make()
    assert seg.push(build("." * 5 + "xx" + "." * 20)) == []
    assert not seg.in_speech


def test_onset_after_min_speech_reports_first_voiced_window() -> None:
    seg = make()
    events = seg.push(build("." * 4 + "xxx"))
    assert events == [SpeechStarted(utterance=1, at_ms=4 * WINDOW_MS)]
    assert seg.in_speech


def test_the_hysteresis_band_alone_never_starts_speech() -> None:
    assert make().push(build("." * 3 + "~" * 30 + "." * 5)) == []


def test_a_run_through_the_hysteresis_band_starts_at_its_first_window() -> None:
    events = make().push(build("." * 4 + "~~x"))
    assert events == [SpeechStarted(utterance=1, at_ms=4 * WINDOW_MS)]


def test_final_keeps_pre_roll_and_post_roll_after_min_silence() -> None:
    audio = build("." * 10 + "x" * 5 + "." * 20)
    events = make().push(audio)
    assert [type(e) for e in events] == [SpeechStarted, EndLikely, UtteranceEnded]
    likely, final = events[1:]
    assert isinstance(likely, EndLikely)
    assert isinstance(final, UtteranceEnded)
    # The speculation came post_roll (2 windows) into the pause, with the final's exact audio.
    assert likely.at_ms == 17 * WINDOW_MS
    np.testing.assert_array_equal(likely.audio, final.audio)
    assert final.reason == "silence"
    assert final.start_ms == 7 * WINDOW_MS  # 3 windows of pre-roll before the onset
    assert final.speech_end_ms == 15 * WINDOW_MS
    assert final.endpoint_ms == 25 * WINDOW_MS  # 10 silent windows = min_silence_ms
    np.testing.assert_array_equal(final.audio, audio[w(7) : w(17)])  # + 2 windows post-roll


def test_pause_shorter_than_min_silence_stays_in_one_utterance() -> None:
    events = make().push(build("." * 3 + "x" * 10 + "." * 8 + "x" * 10 + "." * 12))
    finals = [e for e in events if isinstance(e, UtteranceEnded)]
    assert len(finals) == 1
    assert len([e for e in events if isinstance(e, SpeechStarted)]) == 1


def test_a_pause_shorter_than_min_silence_voids_its_speculation() -> None:
    events = make().push(build("." * 3 + "x" * 10 + "." * 6 + "x" * 10 + "." * 12))
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "SpeechStarted",
        "EndLikely",  # 2 windows into the 6-window pause
        "SpeechResumed",
        "EndLikely",  # the real end
        "UtteranceEnded",
    ]
    assert events[3].audio.shape == events[4].audio.shape


def test_hysteresis_band_does_not_end_speech() -> None:
    events = make().push(build("." * 3 + "x" * 5 + "~" * 15 + "x" * 5 + "." * 12))
    assert len([e for e in events if isinstance(e, UtteranceEnded)]) == 1


def test_two_utterances_each_get_start_and_final() -> None:
    events = make().push(build(("." * 12 + "x" * 6) * 2 + "." * 12))
    events = [e for e in events if isinstance(e, SpeechStarted | UtteranceEnded)]
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["SpeechStarted", "UtteranceEnded"] * 2
    assert [e.utterance for e in events] == [1, 1, 2, 2]


def test_partials_every_interval_of_audio_are_prefixes_of_the_final() -> None:
    events = make(partial_interval_ms=320).push(build("." * 3 + "x" * 35 + "." * 12))
    partials = [e for e in events if isinstance(e, PartialDue)]
    final = next(e for e in events if isinstance(e, UtteranceEnded))
    assert len(partials) == 3
    for p in partials:
        np.testing.assert_array_equal(p.audio, final.audio[: len(p.audio)])
    assert [len(p.audio) for p in partials] == sorted({len(p.audio) for p in partials})


def test_long_utterance_is_cut_at_its_quietest_point_without_losing_audio() -> None:
    # 2 s cap = 63 windows. A short dip (3 silent windows) sits in the second half.
    pattern = "." * 2 + "x" * 45 + "." * 3 + "x" * 30 + "." * 15
    audio = build(pattern)
    events = make(max_utterance_s=2.0).push(audio)
    finals = [e for e in events if isinstance(e, UtteranceEnded)]
    assert [f.reason for f in finals] == ["max_length", "silence"]
    first, second = finals
    cut_ms = first.start_ms + len(first.audio) * 1000 // 16000
    assert 47 * WINDOW_MS <= cut_ms <= 50 * WINDOW_MS  # inside the dip
    joined = np.concatenate([first.audio, second.audio])
    start = first.start_ms * 16
    np.testing.assert_array_equal(joined, audio[start : start + len(joined)])
    assert second.start_ms == cut_ms
    # One barge-in only: the caller never stopped speaking.
    assert len([e for e in events if isinstance(e, SpeechStarted)]) == 1


def test_flush_finalises_an_utterance_in_progress() -> None:
    seg = make()
    audio = build("." * 3 + "x" * 10)
    seg.push(audio[:-100])  # the last samples stay pending (less than a window)
    events = seg.flush()
    assert len(events) == 1
    final = events[0]
    assert isinstance(final, UtteranceEnded)
    assert final.reason == "flush"
    np.testing.assert_array_equal(final.audio[: len(audio) - 100], audio[: len(audio) - 100])


def test_flush_when_idle_reports_nothing() -> None:
    seg = make()
    seg.push(build("." * 10))
    assert seg.flush() == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_decisions_do_not_depend_on_how_audio_is_chunked(seed: int) -> None:
    audio = build("." * 4 + "x" * 20 + "." * 4 + "x" * 8 + "." * 15 + "x" * 5 + "." * 12)
    whole = make(partial_interval_ms=160).push(audio)
    seg = make(partial_interval_ms=160)
    rng = np.random.default_rng(seed)
    pieces, start = [], 0
    while start < len(audio):
        size = int(rng.integers(1, 3000))
        pieces += seg.push(audio[start : start + size])
        start += size
    assert [(type(e), e.utterance, getattr(e, "at_ms", None)) for e in whole] == [
        (type(e), e.utterance, getattr(e, "at_ms", None)) for e in pieces
    ]
    for a, b in zip(whole, pieces, strict=True):
        if isinstance(a, UtteranceEnded):
            np.testing.assert_array_equal(a.audio, b.audio)
