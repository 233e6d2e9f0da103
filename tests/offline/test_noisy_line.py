"""A noisy line's finals are decoded as in a batch: the line is judged by the spread of its
levels (``noise_floor.level_spread_db``), and under ``noisy_line_db`` a final is decoded in
Whisper's whole 30 s window after up to ``noisy_context_window_s`` of the call's earlier
speech, the older finals as prompt text. Real recordings; nothing here is timed."""

from __future__ import annotations

import numpy as np
import pytest
import soxr
from human_audio import load_clips
from noisy_audio import NOISE_KINDS, mix, stream

from voicehost.audio import ulaw_to_pcm16_array
from voicehost_whisper_stt import WhisperConfig
from voicehost_whisper_stt.context import CallContext, Context, final_context
from voicehost_whisper_stt.engine import get_engine
from voicehost_whisper_stt.noise_floor import level_spread_db

RATE = 16_000
NOISY_LINE_DB = WhisperConfig().noisy_line_db


def line(ulaw: bytes) -> np.ndarray:
    """μ-law 8 kHz as the session hears it: float32 at 16 kHz."""
    pcm = ulaw_to_pcm16_array(ulaw).astype(np.float32) / 32768
    return soxr.resample(pcm, 8000, RATE).astype(np.float32)


def test_level_spread_falls_with_the_snr_and_reads_pink_noise_at_5_db_as_a_noisy_line() -> None:
    for clip in load_clips():
        assert level_spread_db(line(clip.ulaw)) >= 15, clip.name  # clean: 17-52 dB
        for kind in NOISE_KINDS:
            spreads = [level_spread_db(line(mix(clip, kind, snr).ulaw)) for snr in (20, 10, 5)]
            assert spreads == sorted(spreads, reverse=True), (clip.name, kind, spreads)
        # broadband noise drowns the pauses; babble and street keep 10 dB or more of spread
        assert level_spread_db(line(mix(clip, "pink", 5).ulaw)) < NOISY_LINE_DB, clip.name
        for kind in ("babble", "street"):
            spread = level_spread_db(line(mix(clip, kind, 5).ulaw))
            assert spread >= NOISY_LINE_DB, (clip.name, kind)


def test_level_spread_of_too_little_audio_is_zero() -> None:
    assert level_spread_db(np.ones(1000, dtype=np.float32)) == 0.0
    assert level_spread_db(np.zeros(0, dtype=np.float32)) == 0.0


def _said(line: np.ndarray) -> CallContext:
    """A call that heard ``line`` (25 s) with a 3 s final every 4 s from 0 to 20 s."""
    heard = CallContext(keep_s=40)
    heard.hear(line)
    for k in range(6):
        heard.said(4 * k * RATE, 3 * RATE, f"Sentence {k}.")
    return heard


def test_a_noisy_lines_final_hears_every_final_in_the_wide_window() -> None:
    rng = np.random.default_rng(7)
    hiss = rng.normal(0, 0.05, 27 * RATE).astype(np.float32)  # steady: a spread of ~1 dB
    heard, utterance = _said(hiss[: 25 * RATE]), hiss[25 * RATE :]
    context, noisy = final_context(
        heard, 25 * RATE, utterance, window_s=10, noisy_line_db=9, noisy_window_s=29
    )
    assert noisy and context is not None
    assert len(context.audio) == 25 * RATE  # every final's audio, from the first
    assert [text for _, _, text in context.finals] == ["Sentence 5."]  # within 10 s: forced
    assert context.prompt == "Sentence 0. Sentence 1. Sentence 2. Sentence 3. Sentence 4."
    # the setting at 0: the 10 s context, not noisy
    context, noisy = final_context(
        heard, 25 * RATE, utterance, window_s=10, noisy_line_db=0, noisy_window_s=29
    )
    assert not noisy and context is not None and len(context.audio) == 5 * RATE
    # no context (carry_context off): a noisy line still gets the whole window
    assert final_context(
        heard, 25 * RATE, utterance, window_s=0, noisy_line_db=9, noisy_window_s=29
    ) == (None, True)


def test_a_clean_lines_final_hears_the_context_window_only() -> None:
    rng = np.random.default_rng(8)
    speech = rng.normal(0, 0.1, 27 * RATE).astype(np.float32)
    speech[np.arange(len(speech)) % RATE >= RATE // 2] = 0.0  # half-second words and pauses
    heard = _said(speech[: 25 * RATE])
    context, noisy = final_context(
        heard, 25 * RATE, speech[25 * RATE :], window_s=10, noisy_line_db=9, noisy_window_s=29
    )
    assert not noisy and context is not None
    assert len(context.audio) == 5 * RATE and context.text == "Sentence 5."
    # a steady hiss after a clean call is not a noisy line: the call's recent audio counts
    hiss = rng.normal(0, 0.05, 2 * RATE).astype(np.float32)
    assert not final_context(
        heard, 25 * RATE, hiss, window_s=10, noisy_line_db=9, noisy_window_s=29
    )[1]


async def _decodes(monkeypatch, ulaw: bytes, **config: object) -> list[dict]:
    """Stream ``ulaw`` through a Whisper session; the keyword arguments of each final
    decode."""
    engine = get_engine(WhisperConfig())
    calls: list[dict] = []
    transcribe = engine.transcribe

    def spy(audio, **kwargs):
        calls.append(kwargs)
        return transcribe(audio, **kwargs)

    monkeypatch.setattr(engine, "transcribe", spy)
    await stream(ulaw, partial_interval_ms=0, **config)
    return calls


@pytest.mark.usefixtures("whisper_loaded")
async def test_a_noisy_lines_finals_hear_the_whole_window_after_the_calls_speech(
    monkeypatch,
) -> None:
    (clip,) = [c for c in load_clips() if c.name == "hts_harvard"]
    calls = await _decodes(monkeypatch, mix(clip, "pink", 5).ulaw)
    assert len(calls) >= 4
    assert all(call["full_window"] for call in calls)
    contexts: list[Context] = [call["context"] for call in calls if call["context"] is not None]
    # the later finals hear more than the 10 s context window: the earlier finals' audio,
    # their text as the prompt, the latest forced within 10 s
    wide = [c for c in contexts if len(c.audio) > 10 * RATE]
    assert wide, [len(c.audio) / RATE for c in contexts]
    for context in wide:
        assert context.prompt
        assert all(len(context.audio) - start <= 10 * RATE for start, _, _ in context.finals)


@pytest.mark.usefixtures("whisper_loaded")
async def test_a_clean_line_or_the_setting_at_0_keeps_the_fitted_window(monkeypatch) -> None:
    (clip,) = [c for c in load_clips() if c.name == "hts_harvard"]
    calls = await _decodes(monkeypatch, b"\xff" * 8000 + clip.ulaw)
    assert calls and not any(call["full_window"] for call in calls)
    assert all(len(call["context"].audio) <= 10 * RATE for call in calls if call["context"])
    monkeypatch.undo()
    calls = await _decodes(monkeypatch, mix(clip, "pink", 5).ulaw, noisy_line_db=0.0)
    assert calls and not any(call["full_window"] for call in calls)
