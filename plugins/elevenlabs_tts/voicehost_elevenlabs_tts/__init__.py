"""voicehost plugin: ElevenLabs TTS (provider id ``elevenlabs``), streamed μ-law 8 kHz.

Loaded from the ``voicehost`` entry point ``elevenlabs_tts``; registers through the
``register_speech_providers`` hook only (never at import time). Importing this package does
not import the ``elevenlabs`` SDK, ``httpx`` or ``websockets``: the first reply does.
"""

from __future__ import annotations

from collections.abc import Callable

from voicehost import SpeechProvider, hookimpl
from voicehost_elevenlabs_tts.config import ElevenLabsConfig, ElevenLabsVoiceSettings
from voicehost_elevenlabs_tts.provider import ElevenLabsSpeechProvider

__all__ = [
    "ElevenLabsConfig",
    "ElevenLabsSpeechProvider",
    "ElevenLabsVoiceSettings",
    "register_speech_providers",
]


@hookimpl
def register_speech_providers(register: Callable[[SpeechProvider], None]) -> None:
    """Register the ``elevenlabs`` speech provider."""
    register(ElevenLabsSpeechProvider())
