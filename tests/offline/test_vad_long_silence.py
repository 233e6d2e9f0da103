"""Silero's recurrent state drifts over long line silence (a greeting, hold); the streaming VAD
resets it every 3 s of quiet, so a real caller after a long silence is heard as promptly as
one after a short pause."""

from __future__ import annotations

import numpy as np
import pytest
from human_audio import load_clips

from voicehost.audio import AudioConverter
from voicehost.contracts import MULAW_8K, PCM16_16K
from voicehost_whisper_stt import vad as vad_module
from voicehost_whisper_stt.vad import QUIET_RESET_MS, WINDOW, WINDOW_MS, StreamingVad


def windows_16k(ulaw: bytes) -> list[np.ndarray]:
    converter = AudioConverter(MULAW_8K, PCM16_16K)
    pcm = converter.convert(ulaw) + converter.flush()
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    return [audio[i : i + WINDOW] for i in range(0, len(audio) - WINDOW + 1, WINDOW)]


def clip(name: str) -> list[np.ndarray]:
    return windows_16k(next(c for c in load_clips() if c.name == name).ulaw)


def onset_window(vad: StreamingVad, windows: list[np.ndarray], threshold: float = 0.3) -> int:
    for i, window in enumerate(windows):
        if vad.window_probability(window) >= threshold:
            return i
    raise AssertionError("no speech found")


def line_noise(seconds: float, seed: int = 1) -> list[np.ndarray]:
    """White noise at about -54 dBFS: a quiet phone line."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 1000 // WINDOW_MS)
    return [(rng.standard_normal(WINDOW) * 0.002).astype(np.float32) for _ in range(n)]


def digital_silence(seconds: float) -> list[np.ndarray]:
    """What the simulator (and a muted line) sends: μ-law 0xFF, decoded to zeros."""
    return [np.zeros(WINDOW, dtype=np.float32)] * int(seconds * 1000 // WINDOW_MS)


def onset_after(lead: list[np.ndarray], speech: list[np.ndarray]) -> int:
    vad = StreamingVad()
    for window in lead:
        vad.window_probability(window)
    return onset_window(vad, speech)


@pytest.mark.parametrize("lead", [digital_silence, line_noise])
@pytest.mark.parametrize("name", ["hts_harvard", "big_dog", "forig"])
def test_onset_after_a_minute_of_quiet_is_as_prompt_as_after_a_second(name, lead, monkeypatch):
    speech = clip(name)
    short = onset_after(lead(1), speech)
    # The reset leaves at most 3 s of quiet in the state: a minute of it must not be worse
    # than the worst of 1-3 s by more than one 32 ms window.
    worst_short = max(short, onset_after(lead(2), speech), onset_after(lead(3), speech))
    assert onset_after(lead(60), speech) <= worst_short + 1
    # Without the reset the drift is real: 2-34 windows (64 ms - 1.1 s) later on these clips.
    monkeypatch.setattr(vad_module, "QUIET_RESET_MS", 10**9)
    assert onset_after(lead(60), speech) >= short + 2


def test_pauses_inside_a_turn_keep_the_state():
    vad = StreamingVad()
    for window in clip("big_dog"):
        vad.window_probability(window)
    for window in line_noise(QUIET_RESET_MS / 1000 / 2):
        vad.window_probability(window)
    assert np.any(vad._h != 0)
