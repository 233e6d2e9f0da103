"""Helpers for tests of the offline models (Piper TTS, Whisper STT): caller sentences,
Piper-synthesized μ-law 8 kHz caller audio, word error rate, an STT callback recorder.

Importable as ``offline_helpers`` once ``tests/offline`` is on ``sys.path`` (its conftest
puts it there).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable

import attrs
import jiwer
import numpy as np

from voicehost.audio import AudioConverter
from voicehost.contracts import MULAW_8K, PCM16_22K, TranscriptionCallbacks

#: Caller utterances: varied phone-call requests, no digits (so "3rd" vs "third" and similar
#: normalisation questions do not count as recognition errors).
CALLER_SENTENCES: tuple[str, ...] = (
    "Hello, I would like to book an appointment for next Tuesday.",
    "Can you tell me what time the office opens in the morning?",
    "I need to cancel my order because it arrived damaged.",
    "Is there a pharmacy near the main entrance of the hospital?",
    "Please send the invoice to my work email address.",
    "My flight was delayed and I missed the connection.",
    "Could you transfer me to someone in the billing department?",
    "The heating in my apartment stopped working last night.",
    "I would like to change the delivery address for my package.",
    "What documents do I need to bring to the interview?",
    "Thank you very much, that answers all of my questions.",
    "Can I pay with a credit card over the phone?",
)

#: Sentences spoken back to back with short (~300 ms) pauses.
MONOLOGUE: tuple[str, ...] = (
    "I moved to a new house at the end of last month.",
    "The kitchen is bigger than the old one and the garden gets a lot of sun.",
    "Unfortunately the internet connection is still not working properly.",
    "The technician came on Friday but he could not find the problem.",
    "Could you please send someone who can replace the router this week?",
)

ULAW_SILENCE = b"\xff"
FRAME = 160  # bytes of one 20 ms μ-law 8 kHz frame


def normalise(text: str) -> str:
    """Lowercase, punctuation stripped (apostrophes kept), whitespace collapsed."""
    text = re.sub(r"[^\w\s']", " ", text.lower())
    return " ".join(text.split())


def wer(references: Iterable[str], hypotheses: Iterable[str]) -> float:
    """Word error rate over all pairs, after :func:`normalise`."""
    return jiwer.wer([normalise(r) for r in references], [normalise(h) for h in hypotheses])


def silence(ms: int) -> bytes:
    """μ-law 8 kHz silence of ``ms`` milliseconds."""
    return ULAW_SILENCE * (8 * ms)


def synthesize_ulaw(text: str) -> bytes:
    """Speak ``text`` with the bundled Piper voice, as a phone call carries it: μ-law 8 kHz.
    Without Piper's noise (``noise_scale`` and ``noise_w_scale`` 0), so the same text is the
    same audio in every run: a test's result does not depend on a random rendering (tiny.en
    once heard "Place in the end voice" in one of them)."""
    from piper import SynthesisConfig

    from voicehost_piper_tts import load_voice, resolve_voice
    from voicehost_piper_tts.voice import BUNDLED_VOICE

    voice = load_voice(resolve_voice(BUNDLED_VOICE))
    steady = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    pcm = b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(text, steady))
    converter = AudioConverter(PCM16_22K, MULAW_8K)
    return converter.convert(pcm) + converter.flush()


def trim_silence(ulaw: bytes, level: float = 0.01) -> bytes:
    """``ulaw`` without the leading and trailing silence Piper puts around a sentence (10 ms
    blocks whose RMS is below ``level``)."""
    from voicehost.audio import ulaw_to_pcm16_array

    samples = ulaw_to_pcm16_array(ulaw).astype(np.float32) / 32768
    blocks = samples[: len(samples) // 80 * 80].reshape(-1, 80)
    loud = np.flatnonzero(np.sqrt((blocks**2).mean(axis=1)) > level)
    if not len(loud):
        return b""
    return ulaw[loud[0] * 80 : (loud[-1] + 1) * 80]


def speech_onset_ms(ulaw: bytes, level: float = 0.02) -> float:
    """Audio time (ms) of the first 10 ms block whose RMS exceeds ``level`` (full scale 1)."""
    from voicehost.audio import ulaw_to_pcm16_array

    samples = ulaw_to_pcm16_array(ulaw).astype(np.float32) / 32768
    blocks = samples[: len(samples) // 80 * 80].reshape(-1, 80)
    loud = np.flatnonzero(np.sqrt((blocks**2).mean(axis=1)) > level)
    return float(loud[0] * 10) if len(loud) else float("nan")


@attrs.define
class Recorder:
    """Collects STT callbacks in order: ``("start",)``, ``("partial", text)``,
    ``("final", text)``, ``("error", exc)``; ``position`` is stamped on each (see ``at``)."""

    events: list[tuple] = attrs.field(factory=list)
    position: int = 0  # bytes of audio fed when the event arrived
    changed: asyncio.Event = attrs.field(factory=asyncio.Event)

    def _add(self, *event: object) -> None:
        self.events.append((*event, self.position))
        self.changed.set()

    def callbacks(self) -> TranscriptionCallbacks:
        return TranscriptionCallbacks(
            on_partial=lambda text: self._add("partial", text),
            on_transcript=lambda text: self._add("final", text),
            on_speech_start=lambda: self._add("start"),
            on_error=lambda exc: self._add("error", exc),
        )

    def of(self, kind: str) -> list[tuple]:
        return [event for event in self.events if event[0] == kind]

    def texts(self, kind: str) -> list[str]:
        return [event[1] for event in self.of(kind)]
