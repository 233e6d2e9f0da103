"""A final decode's context (:mod:`voicehost_whisper_stt.context`): the call's recent audio
and finals kept in a ring, the context chosen for an utterance, the decoder prefix made of
it, a decode that strays from it refused, and an early-stopping decode resumed. The unit
tests load no model; those marked ``whisper_loaded`` decode real recordings."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from voicehost_whisper_stt import WhisperConfig
from voicehost_whisper_stt.context import LEAD_MS, CallContext, Context
from voicehost_whisper_stt.engine import WhisperEngine, get_engine
from voicehost_whisper_stt.window import WindowedText, _forced_context, _strays

RATE = 16_000
HUMAN = "tests/data/human"


def heard(seconds: float) -> CallContext:
    """A context that has heard ``seconds`` of a ramp (sample i has the value i)."""
    context = CallContext(keep_s=30)
    total = int(seconds * RATE)
    for start in range(0, total, 320):  # 20 ms chunks, as a call delivers them
        context.hear(np.arange(start, min(start + 320, total), dtype=np.float32))
    return context


def test_the_context_is_the_latest_whole_finals_that_fit_the_window() -> None:
    context = heard(12)
    context.said(0, 2 * RATE, "One.")
    context.said(3 * RATE, 2 * RATE, "Two.")
    context.said(6 * RATE, 2 * RATE, "Three.")
    # an utterance of 2 s at 9 s: with a 9 s window only "Two." and "Three." fit
    chosen = context.before(9 * RATE, 2 * RATE, window=9 * RATE)
    assert chosen is not None
    assert chosen.text == "Two. Three." and chosen.prompt == "One."
    assert chosen.finals == ((0, 2 * RATE, "Two."), (3 * RATE, 5 * RATE, "Three."))
    # the audio runs from the first chosen final to the utterance, sample for sample
    assert len(chosen.audio) == 6 * RATE
    assert chosen.audio[0] == 3 * RATE and chosen.audio[-1] == 9 * RATE - 1
    # a wider window takes all three; a narrower one none (and then the line's last second)
    assert context.before(9 * RATE, 2 * RATE, window=20 * RATE).text == "One. Two. Three."
    assert context.before(9 * RATE, 2 * RATE, window=4 * RATE, lead=0) is None
    lead = context.before(9 * RATE, 2 * RATE, window=4 * RATE)
    assert lead is not None and lead.finals == () and lead.prompt == "Three."
    assert len(lead.audio) == LEAD_MS * 16 and lead.audio[-1] == 9 * RATE - 1


def test_a_wide_context_forces_only_its_recent_finals_and_prompts_the_earlier_ones() -> None:
    context = heard(12)
    context.said(0, 2 * RATE, "One.")
    context.said(3 * RATE, 2 * RATE, "Two.")
    context.said(6 * RATE, 2 * RATE, "Three.")
    # an utterance of 2 s at 9 s, a noisy line: 20 s of context, finals forced within 6 s
    wide = context.before(9 * RATE, 2 * RATE, window=20 * RATE, forced=6 * RATE)
    assert wide is not None
    assert len(wide.audio) == 9 * RATE and wide.audio[0] == 0  # every final's audio
    assert wide.finals == ((6 * RATE, 8 * RATE, "Three."),)  # only the one within 6 s
    assert wide.prompt == "One. Two."  # the rest as text, oldest first
    # the decoder starts at "Three." (6 s), past the audio of the prompted finals
    assert _forced_context(_Tokens(), wide)[0] == 100 + 300  # type: ignore[arg-type]
    # no final within the forced span: all of them are prompt, the utterance starts at 9 s
    prompted = context.before(9 * RATE, 2 * RATE, window=20 * RATE, forced=RATE)
    assert prompted is not None and prompted.finals == () and prompted.prompt.endswith("Three.")
    assert _forced_context(_Tokens(), prompted) == [100 + 450]  # type: ignore[arg-type]


def test_no_final_for_the_first_utterance_an_empty_final_or_audio_no_longer_kept() -> None:
    context = heard(5)
    assert context.before(RATE, RATE, window=10 * RATE, lead=0) is None
    context.said(0, RATE, "   ")  # Whisper heard no words: not a context
    assert context.before(2 * RATE, RATE, window=10 * RATE, lead=0) is None
    old = heard(40)  # 40 s heard, 30 s kept
    old.said(2 * RATE, RATE, "Long ago.")
    assert old.before(39 * RATE, RATE, window=40 * RATE, lead=0) is None


def test_an_utterance_with_no_final_before_it_gets_the_lines_last_second() -> None:
    context = heard(5)
    first = context.before(3 * RATE, RATE, window=10 * RATE)
    assert first is not None and first.finals == () and first.text == "" and first.prompt == ""
    assert len(first.audio) == RATE and first.audio[0] == 2 * RATE  # 2-3 s, sample for sample
    # half a second of line is enough; less (the stream just began, or a long utterance
    # leaves no room in the window) gives none
    assert len(context.before(RATE // 2, RATE, window=10 * RATE).audio) == RATE // 2
    assert context.before(RATE // 4, RATE, window=10 * RATE) is None
    assert context.before(3 * RATE, 9 * RATE + RATE * 3 // 4, window=10 * RATE) is None


def test_a_final_that_overlaps_the_utterance_is_not_its_context() -> None:
    context = heard(10)
    context.said(RATE, 2 * RATE, "Hello.")  # ends at 3 s
    assert context.before(3 * RATE - 16 * 40, RATE, window=10 * RATE) is not None  # 40 ms
    assert context.before(2 * RATE, RATE, window=10 * RATE, lead=0) is None  # inside it


class _Tokens:
    """A stand-in tokenizer: words are ids 1-99, 100 + n is the timestamp n × 20 ms."""

    timestamp_begin = 100

    @staticmethod
    def encode(text: str) -> list[int]:
        return [len(word) for word in text.split()]


def test_the_decoder_prefix_times_each_final_then_starts_the_utterance() -> None:
    context = Context(
        np.zeros(5 * RATE, dtype=np.float32),
        ((0, RATE, "ab cde"), (2 * RATE, 3 * RATE, "f")),
        prompt="",
    )
    tokens = _forced_context(_Tokens(), context)  # type: ignore[arg-type]
    # <|0.00|> ab cde <|1.00|> <|2.00|> f <|3.00|> <|5.00|>: the utterance starts at 5 s
    assert tokens == [100, 2, 3, 150, 200, 1, 250, 350]


def test_a_decode_that_loops_or_says_the_context_again_strays() -> None:
    context = Context(np.zeros(RATE, dtype=np.float32), ((0, RATE, "The hat brim was wide."),), "")
    assert not _strays("The juice of lemons makes fine punch.", context)
    assert _strays("the hat brim was wide and the juice of lemons", context)
    looped = "The wagon moved on. The juice of lemons. The wagon moved on. The juice of lemons."
    assert _strays(looped, context)
    short = Context(np.zeros(RATE, dtype=np.float32), ((0, RATE, "Yes."),), "")
    assert not _strays("Yes. I said yes.", short)  # a short answer said again is the caller
    # a sentence of a longer context said again
    two = Context(
        np.zeros(RATE, dtype=np.float32), ((0, RATE, "Hi there. The hat brim was wide."),), ""
    )
    assert _strays("The hat brim was wide. Much the soldiers", two)
    # starting the context over, cut short (babble after "It's easy to tell the depth of a
    # well."), but not a new sentence that shares a word or three with it
    well = Context(
        np.zeros(RATE, dtype=np.float32), ((0, RATE, "It's easy to tell the depth of a well."),), ""
    )
    assert _strays("It's easy to tell the depth of", well)
    assert not _strays("It's easy to see.", well)
    assert not _strays("Tell the depth, please.", well)


def test_a_decode_that_stops_early_is_resumed_after_what_it_said(monkeypatch) -> None:
    calls: list[tuple[int, Context | None, bool]] = []
    results = iter(
        [
            WindowedText(("The weather.", "Is nice."), 0.0, -0.2, times=((0.2, 1.0), (1.2, 3.0))),
            WindowedText(("And I'm using a radio.",), 0.0, -0.3, times=((0.1, 4.5),)),
        ]
    )

    def decode(_model, _tokenizer, audio, *, beam_size, previous_text, context, full_window):
        calls.append((len(audio), context, full_window))
        return next(results)

    monkeypatch.setattr("voicehost_whisper_stt.engine.decode_in_window", decode)
    audio = np.arange(8 * RATE, dtype=np.float32)
    result = WhisperEngine._decode_windowed(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        audio,
        beam_size=5,
        prompt="Hi.",
        context=None,
        full_window=True,
    )
    assert result is not None
    assert result.segments == ("The weather.", "Is nice.", "And I'm using a radio.")
    assert result.times[-1] == (3.1, 7.5) and result.avg_logprob == -0.3
    # the rest (5 s from 3 s on) was decoded after the first 3 s and what was said in them
    (first, none, full), (rest, said, full_again) = calls
    assert first == 8 * RATE and none is None and rest == 5 * RATE
    assert full and full_again  # a noisy line's resumption is in the whole window too
    assert said is not None and said.prompt == "Hi."
    # what was said, segment by segment, at its times (samples)
    assert said.finals == ((3200, 16000, "The weather."), (19200, 48000, "Is nice."))
    assert len(said.audio) == 3 * RATE and said.audio[-1] == 3 * RATE - 1


def test_a_decode_that_reaches_the_end_of_its_audio_is_not_resumed(monkeypatch) -> None:
    calls: list[int] = []

    def decode(_model, _tokenizer, audio, **_kwargs):
        calls.append(len(audio))
        # 1.5 s of trailing silence after its last timestamp: nothing left to decode
        return WindowedText(("Yes.",), 0.0, -0.2, times=((0.0, len(audio) / RATE - 1.5),))

    monkeypatch.setattr("voicehost_whisper_stt.engine.decode_in_window", decode)
    WhisperEngine._decode_windowed(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        np.zeros(4 * RATE, dtype=np.float32),
        beam_size=5,
        prompt=None,
        context=None,
    )
    assert calls == [4 * RATE]


def _clip(name: str) -> np.ndarray:
    audio, rate = sf.read(f"{HUMAN}/{name}.wav", dtype="float32")
    return soxr.resample(audio, rate, RATE).astype(np.float32)


@pytest.mark.usefixtures("whisper_loaded")
def test_an_utterance_decoded_after_its_context_gives_only_its_own_words() -> None:
    first, second = _clip("forig"), _clip("mmt1")
    context = Context(first, ((0, len(first), "Don't throw trash on the street."),), "")
    engine = get_engine(WhisperConfig())
    result = engine.transcribe(second, language="en", beam_size=5, context=context)
    assert result.with_context
    words = result.text.lower()
    assert "depth of a well" in words and "trash" not in words, result.text


@pytest.mark.usefixtures("whisper_loaded")
async def test_a_calls_finals_are_decoded_after_its_earlier_finals(monkeypatch) -> None:
    from human_audio import load_clips
    from noisy_audio import stream

    engine = get_engine(WhisperConfig())
    contexts: list[Context | None] = []
    transcribe = engine.transcribe

    def spy(audio, **kwargs):
        if kwargs.get("final", True):
            contexts.append(kwargs.get("context"))
        return transcribe(audio, **kwargs)

    monkeypatch.setattr(engine, "transcribe", spy)
    (clip,) = [c for c in load_clips() if c.name == "hts_harvard"]
    silence = b"\xff" * 8000  # a second of the line (μ-law silence) before the caller
    result = await stream(silence + clip.ulaw, partial_interval_ms=0, noise_gate=False)
    assert len(result.finals) >= 3
    # the first utterance hears the line before it, no words
    assert contexts[0] is not None and contexts[0].finals == ()
    later = [c for c in contexts[1:] if c is not None and c.finals]
    assert later, "no final was decoded after an earlier one"
    for context in later:
        # whole earlier finals, in order, and audio that fits the 10 s window with them
        assert context.text in " ".join(result.finals)
        assert len(context.audio) < 10 * RATE
