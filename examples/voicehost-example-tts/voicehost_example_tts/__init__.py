"""An example third-party voicehost plugin: TTS provider ``beep``.

It "speaks" each word of the text as a short 8 kHz μ-law tone followed by a gap, which is
enough to hear barge-in and pacing work on a phone call without any vendor.

Everything it needs comes from ``voicehost`` itself: the provider contract, the audio format,
``hookimpl``, the config base (:class:`voicehost.ProviderConfig` with pydantic's ``Field``)
and the μ-law encoder (imported where it is used: it loads numpy). Its ``[tts.beep]`` table
is :class:`BeepConfig`: the host parses it once at start-up, so a misspelt key
(``tone_hx``) or a wrong type (``tone_hz = "500"``) is a config error naming the table, the
key and the value, before any call.
"""

from __future__ import annotations

import math
import struct
from collections.abc import AsyncIterator, Callable
from typing import ClassVar

from voicehost import MULAW_8K, Field, ProviderConfig, SpeechProvider, hookimpl

__all__ = ["BeepConfig", "BeepSpeechProvider"]


class BeepConfig(ProviderConfig):
    """The ``[tts.beep]`` table: one ``tone_hz`` beep of ``beep_ms`` per word, then
    ``gap_ms`` of silence."""

    tone_hz: int = Field(660, ge=100, le=3400, description="Beep pitch, Hz (phone band).")
    beep_ms: int = Field(120, ge=10, le=2000, description="Length of one beep, ms.")
    gap_ms: int = Field(80, ge=0, le=2000, description="Silence after each beep, ms.")


class BeepSpeechProvider(SpeechProvider[BeepConfig]):
    """One beep per word of the text; μ-law 8 kHz (what Twilio plays, so nothing is
    converted)."""

    id: ClassVar[str] = "beep"
    label: ClassVar[str] = "Beep per word (example plugin)"
    config_class: ClassVar[type[BeepConfig]] = BeepConfig
    output_formats = (MULAW_8K,)

    async def synthesize(self, text: str, config: BeepConfig) -> AsyncIterator[bytes]:
        """Yield, per whitespace-separated word of ``text``, one chunk: ``beep_ms`` of a
        ``tone_hz`` sine (μ-law 8 kHz, about −12 dBFS) then ``gap_ms`` of μ-law silence
        (``0xFF``)."""
        # Imported here: voicehost's audio helpers load numpy, which listing plugins skips.
        from voicehost import ulaw_encode

        rate = MULAW_8K.sample_rate
        count = rate * config.beep_ms // 1000
        samples = (
            round(8000 * math.sin(2 * math.pi * config.tone_hz * n / rate)) for n in range(count)
        )
        beep = ulaw_encode(struct.pack(f"<{count}h", *samples))
        gap = b"\xff" * (rate * config.gap_ms // 1000)
        for _word in text.split():
            yield beep + gap


@hookimpl
def register_speech_providers(register: Callable[[SpeechProvider], None]) -> None:
    """Register the ``beep`` provider."""
    register(BeepSpeechProvider())
