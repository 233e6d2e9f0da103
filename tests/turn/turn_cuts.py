"""Cut points in the real recordings of ``tests/data/human``: where a caller's turn is complete
and where it is not, as the host would hand them to an end-of-turn detector.

Shared by ``tests/turn/test_smart_turn.py`` and ``bench/turn_detector.py`` (importable as
``turn_cuts`` once ``tests/turn`` is on ``sys.path``; the conftest puts it there, the bench
inserts it).

Each :class:`Cut` is a span of one recording, the turn's audio as the host assembles it
(``voicehost.server.turn_taking``): from 200 ms before the turn's first speech to the moment
the detector is asked, that is the end of the speech plus the STT's endpointing silence
(``tail_ms``). The recording is read as the call would carry it (μ-law 8 kHz) and resampled
to PCM16 16 kHz with :class:`voicehost.AudioConverter`, as the host does. The tail is the
recording's own pause after ``end_s`` (``pause_s`` long: sentence ends, the monologue's
pauses), then, past it or where there is none (mid-sentence cuts), the recording's own
background (its quietest 200 ms, repeated) spliced in: silence the speaker never made. So a
tail never holds the next sentence's first word.

Times were set from an energy analysis of each clip (10 ms blocks, 12 dB above the clip's
floor) and ``tiny.en`` word timestamps, then checked by ear.

Kinds:

* ``sentence``: the end of a whole read sentence (the four single-sentence clips; the seven
  Harvard sentences of ``hts_harvard.wav``, each its own turn). Complete.
* ``monologue``: a real pause in VE9QRP's free speech after which he goes on (the end of a
  spoken sentence, a 1.1 s "a … Kenwood" hesitation). The right answer is incomplete (he is
  holding the floor), though two of them end a sentence.
* ``monologue-end``: the end of VE9QRP's monologue. Complete.
* ``mid-sentence``: a read sentence cut after a few words, with background spliced in as if
  the reader had paused there. Incomplete.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import attrs
import numpy as np

from voicehost import MULAW_8K, PCM16_16K, AudioConverter
from voicehost.wavfile import read_audio_ulaw

__all__ = ["CUTS", "DATA_DIR", "Cut", "Kind", "complete_expected", "cut_audio"]

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "human"
Kind = Literal["sentence", "monologue", "monologue-end", "mid-sentence"]
_RATE = 8000
_PRE_ROLL_S = 0.2


@attrs.frozen
class Cut:
    """One question to the detector.

    Attributes:
        file: the recording in ``tests/data/human``.
        start_s: where the turn's audio starts (200 ms before its first speech), s.
        end_s: where the speech stops, s.
        kind: see the module docstring.
        text: what was said up to ``end_s`` (``|`` marks the cut for mid-sentence cuts).
        pause_s: how long the recording itself stays quiet after ``end_s`` (0: it goes on
            speaking, background is spliced in), s.
    """

    file: str
    start_s: float
    end_s: float
    kind: Kind
    text: str
    pause_s: float = 0.0


def complete_expected(cut: Cut) -> bool:
    """The right answer: complete for a sentence or the monologue's end."""
    return cut.kind in ("sentence", "monologue-end")


_HTS = "hts_harvard.wav"
_VE = "ve9qrp_monologue.wav"
# Harvard sentences: (speech start, speech end, pause after) from the energy analysis.
_HARVARD = [
    (0.24, 2.50, 0.74, "The Navy attacked the big task force."),
    (3.24, 5.22, 1.02, "The hat brim was wide and too droopy."),
    (6.24, 8.51, 0.73, "These days a chicken leg is a rare dish."),
    (9.24, 11.69, 0.55, "The juice of lemons makes fine punch."),
    (12.24, 14.74, 0.50, "The wagon moved on well oiled wheels."),
    (15.24, 17.88, 0.34, "March the soldiers past the next hill."),
    (18.22, 20.42, 0.58, "Her purse was full of useless trash."),
]
# Mid-sentence cuts of the Harvard sentences: (sentence index, cut time, words so far).
_HARVARD_MID = [
    (0, 1.50, "The Navy attacked the |"),
    (0, 1.82, "The Navy attacked the big |"),
    (1, 4.10, "The hat brim was |"),
    (1, 4.70, "The hat brim was wide and |"),
    (2, 7.32, "These days a |"),
    (3, 9.98, "The juice of |"),
    (3, 10.70, "The juice of lemons makes |"),
    (4, 13.24, "The wagon moved |"),
    (4, 13.80, "The wagon moved on well |"),
    (5, 16.38, "March the soldiers |"),
    (5, 17.24, "March the soldiers past the |"),
    (6, 19.06, "Her purse was |"),
    (6, 19.26, "Her purse was full |"),
]
_VE_START = 0.83 - _PRE_ROLL_S

CUTS: tuple[Cut, ...] = (
    Cut("big_dog.wav", 0.0, 2.25, "sentence", "The big dog left to chew on the old ragdoll.", 0.25),
    Cut("morig.wav", 0.0, 2.0, "sentence", "That frog jumped through the weeds."),
    Cut("forig.wav", 0.0, 1.58, "sentence", "Don't throw trash on the street."),
    Cut("mmt1.wav", 0.53, 2.73, "sentence", "It's easy to tell the depth of a well.", 1.27),
    *(Cut(_HTS, max(0.0, s - _PRE_ROLL_S), e, "sentence", t, p) for s, e, p, t in _HARVARD),
    Cut(
        _VE, _VE_START, 5.45, "monologue", "The weather here seems quite nice, nice fall day.", 0.5
    ),
    Cut(
        _VE, _VE_START, 12.31, "monologue", "… a pleasant enough week, the last little while.", 0.29
    ),
    Cut(_VE, _VE_START, 16.50, "monologue", "… And I'm using a (hesitation)", 1.12),
    Cut(_VE, _VE_START, 25.22, "monologue-end", "… transmitting about five watts into Yagis."),
    Cut("big_dog.wav", 0.0, 0.74, "mid-sentence", "The big dog |"),
    Cut("big_dog.wav", 0.0, 1.26, "mid-sentence", "The big dog left to chew |"),
    Cut("morig.wav", 0.0, 1.06, "mid-sentence", "That frog jumped |"),
    Cut("forig.wav", 0.0, 0.88, "mid-sentence", "Don't throw trash |"),
    Cut("mmt1.wav", 0.53, 2.26, "mid-sentence", "It's easy to tell the depth |"),
    *(
        Cut(_HTS, max(0.0, _HARVARD[i][0] - _PRE_ROLL_S), end, "mid-sentence", text)
        for i, end, text in _HARVARD_MID
    ),
)


@cache
def _ulaw(file: str) -> bytes:
    return read_audio_ulaw(DATA_DIR / file)


@cache
def _background(file: str, ms: int = 200) -> bytes:
    """The clip's quietest ``ms`` (μ-law), in 10 ms steps: its line noise."""
    from voicehost.audio import ulaw_to_pcm16_array

    ulaw = _ulaw(file)
    x = ulaw_to_pcm16_array(ulaw).astype(np.float64) ** 2
    n = ms * _RATE // 1000
    energy = np.convolve(x, np.ones(n), "valid")[:: _RATE // 100]
    start = int(np.argmin(energy)) * (_RATE // 100)
    return ulaw[start : start + n]


def cut_audio(cut: Cut, tail_ms: int = 200) -> bytes:
    """The turn's audio up to the question: PCM16 16 kHz mono bytes (see the module doc).

    Args:
        cut: where.
        tail_ms: the endpointing silence after the speech, ms.
    """
    ulaw = _ulaw(cut.file)
    start, end = int(cut.start_s * _RATE), int(cut.end_s * _RATE)
    n_tail = tail_ms * _RATE // 1000
    tail = ulaw[end : end + min(n_tail, int(cut.pause_s * _RATE))]
    noise = _background(cut.file)
    while len(tail) < n_tail:
        tail += noise[: n_tail - len(tail)]
    converter = AudioConverter(MULAW_8K, PCM16_16K)
    return converter.convert(ulaw[start:end] + tail) + converter.flush()
