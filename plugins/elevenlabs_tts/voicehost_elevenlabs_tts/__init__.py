"""voicehost plugin: ElevenLabs TTS (provider id ``elevenlabs``), streamed μ-law 8 kHz.

Loaded from the ``voicehost`` entry point ``elevenlabs_tts``; registers through the
``register_speech_providers`` hook only (never at import time).
"""

from __future__ import annotations

from collections.abc import Callable

from voicehost import hookimpl
from voicehost.contracts import SpeechProvider
from voicehost_elevenlabs_tts.config import DEFAULT_CONFIG, ElevenLabsSettings
from voicehost_elevenlabs_tts.provider import ElevenLabsSpeechProvider

__all__ = [
    "DEFAULT_CONFIG",
    "ElevenLabsSettings",
    "ElevenLabsSpeechProvider",
    "register_speech_providers",
]


@hookimpl
def register_speech_providers(register: Callable[[SpeechProvider], None]) -> None:
    """Register the ``elevenlabs`` speech provider."""
    register(ElevenLabsSpeechProvider())
