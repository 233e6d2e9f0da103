"""Whisper's windowed decode (:mod:`voicehost_whisper_stt.window`): the encoder window fitted
to the utterance, segments the model "hears" in the padding dropped, repetitive results
refused (the engine then decodes the standard way), and the engine's choice between them."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr
from offline_helpers import wer

from voicehost_whisper_stt import WhisperConfig
from voicehost_whisper_stt.engine import get_engine
from voicehost_whisper_stt.window import (
    FULL_WINDOW_FRAMES,
    MIN_WINDOW_FRAMES,
    _segments,
    compression_ratio,
    fits_window,
    window_frames,
)

HUMAN = "tests/data/human"


def test_the_window_is_the_audio_plus_a_second_at_least_ten_seconds_at_most_thirty():
    assert window_frames(16000 * 2) == MIN_WINDOW_FRAMES  # 2 s → the 10 s minimum
    assert window_frames(16000 * 12) == 1300  # 12 s + 1 s
    assert window_frames(16000 * 12 + 1) == 1300
    assert window_frames(160 * 1250) == 1400  # 12.5 s + 1 s, rounded up to whole seconds
    assert window_frames(16000 * 40) == FULL_WINDOW_FRAMES
    assert fits_window(16000 * 28) and not fits_window(16000 * 29)


def test_repeated_text_compresses_well():
    once = "Don't throw trash on the street."
    assert compression_ratio(once) < 2.4
    assert compression_ratio(" ".join([once] * 6)) > 2.4
    assert compression_ratio("") == 0.0


class _Tokens:
    """A stand-in tokenizer: ids below 100 are words, 100 + n the timestamp n × 20 ms."""

    timestamp_begin = 100

    @staticmethod
    def decode(ids: list[int]) -> str:
        return " ".join(f"w{i}" for i in ids)


def _t(seconds: float) -> int:
    return 100 + round(seconds / 0.02)


def test_segments_starting_past_the_end_of_the_audio_are_dropped():
    tokens = [_t(0), 1, 2, _t(1.5), _t(1.5), 3, _t(2.0), _t(2.0), 4, 5, _t(3.0)]
    # … each with its start and end (s)
    assert _segments(_Tokens(), tokens, duration_s=2.0) == [("w1 w2", 0, 1.5), ("w3", 1.5, 2.0)]
    # an unterminated last segment is kept when it starts inside the audio, to its end
    assert _segments(_Tokens(), [_t(0), 1, _t(1.0), _t(1.0), 2], 2.0) == [
        ("w1", 0, 1.0),
        ("w2", 1.0, 2.0),
    ]
    assert _segments(_Tokens(), [1, 2], 2.0) == [("w1 w2", 0, 2.0)]  # no timestamps at all
    # text straight after a forced prefix starts where the prefix left off
    assert _segments(_Tokens(), [1, _t(3.0)], 4.0, first_start_s=2.5) == [("w1", 2.5, 3.0)]
    assert _segments(_Tokens(), [], 5.0) == []


def _clip(name: str) -> np.ndarray:
    audio, rate = sf.read(f"{HUMAN}/{name}.wav", dtype="float32")
    return soxr.resample(audio, rate, 16000).astype(np.float32)


@pytest.mark.usefixtures("whisper_loaded")
@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("forig", "Don't throw trash on the street."),
        ("mmt1", "It's easy to tell the depth of a well."),
        ("morig", "That frog jumped through the weeds."),
    ],
)
def test_a_short_answer_is_decoded_in_a_window_once_and_as_well(name, reference):
    engine = get_engine(WhisperConfig())
    windowed = engine.transcribe(_clip(name), language="en", beam_size=5)
    assert windowed.windowed
    assert wer([reference], [windowed.text]) <= 0.2  # said once, not repeated into the padding
    assert compression_ratio(windowed.text) < 2.4
    assert 0.0 <= windowed.no_speech_prob < 0.5 and windowed.avg_logprob > -1.0


@pytest.mark.usefixtures("whisper_loaded")
def test_an_utterance_longer_than_a_short_window_and_language_detection_decode_the_standard_way():
    engine = get_engine(WhisperConfig())
    long = np.concatenate([_clip("hts_harvard"), np.zeros(16000 * 9, dtype=np.float32)])
    assert not engine.transcribe(long, language="en", beam_size=1).windowed
    assert not engine.transcribe(_clip("forig"), language=None, beam_size=1).windowed


@pytest.mark.usefixtures("whisper_loaded")
def test_a_refused_windowed_decode_is_decoded_again_the_standard_way(monkeypatch):
    import voicehost_whisper_stt.engine as engine_module

    refused: list[int] = []

    def refuse(model, tokenizer, audio, **kwargs):
        refused.append(len(audio))
        return None  # as for a repetitive or improbable result

    monkeypatch.setattr(engine_module, "decode_in_window", refuse)
    result = get_engine(WhisperConfig()).transcribe(_clip("forig"), language="en", beam_size=1)
    assert refused and not result.windowed
    assert wer(["Don't throw trash on the street."], [result.text]) <= 0.2


def test_whisper_loops_are_collapsed_and_ordinary_repeats_kept():
    from voicehost_whisper_stt.cleanup import collapse_repeats

    well = "It's easy to tell the depth of a well."
    assert collapse_repeats(" ".join([well] * 4)) == well  # babble at 20 dB
    assert collapse_repeats("come on, come on, come on, come on") == "come on"
    looped = "don't throw trash on the streets, Don't throw trash on the streets, don't throw"
    assert collapse_repeats(looped + " trash on the streets") == "don't throw trash on the streets"
    # a loop of two sentences, cut off by the end of the decode (babble at 20 dB)
    juice, wagon = "The juice of lemons makes fine punch.", "The wagon moved on well oiled wheels."
    twice = f"{juice} {wagon} {juice} {wagon} The wagon moved on well"
    assert collapse_repeats(twice) == f"{juice} {wagon}"
    for kept in (
        "Bye bye.",
        "No. No.",
        "I said no no no to that",
        "Hello. How are you?",
        "I want a table. No, I want a table for two. I want",  # no loop: the end stays
    ):
        assert collapse_repeats(kept) == kept
