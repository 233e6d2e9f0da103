"""An example third-party voicehost plugin: TTS provider ``beep``.

It "speaks" each word of the text as a short 8 kHz μ-law tone followed by a gap, which is
enough to hear barge-in and pacing work on a phone call without any vendor.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping
from typing import Any

import numpy as np

from voicehost import MULAW_8K, ConfigError, SpeechProvider, hookimpl
from voicehost.audio import ulaw_encode


class BeepSpeechProvider(SpeechProvider):
    """One ``tone_hz`` beep of ``beep_ms`` per word, then ``gap_ms`` of silence; μ-law 8 kHz."""

    id = "beep"
    label = "Beep per word (example plugin)"
    output_formats = (MULAW_8K,)
    default_config: Mapping[str, Any] = {"tone_hz": 660, "beep_ms": 120, "gap_ms": 80}

    def validate_config(self, config: Mapping[str, Any]) -> None:
        if not 100 <= config["tone_hz"] <= 3400:
            raise ConfigError("[tts.beep] tone_hz must be within the phone band, 100-3400 Hz")

    async def synthesize(self, text: str, config: Mapping[str, Any]) -> AsyncIterator[bytes]:
        rate = MULAW_8K.sample_rate
        beep_n = rate * config["beep_ms"] // 1000
        t = np.arange(beep_n) / rate
        beep = ulaw_encode((8000 * np.sin(2 * math.pi * config["tone_hz"] * t)).astype(np.int16))
        gap = b"\xff" * (rate * config["gap_ms"] // 1000)
        for _word in text.split():
            yield beep + gap


@hookimpl
def register_speech_providers(register):
    register(BeepSpeechProvider())
