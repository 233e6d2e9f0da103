"""voicehost plugin: OpenAI TTS (provider id ``openai``), streamed 24 kHz PCM.

Loaded from the ``voicehost`` entry point ``openai_tts``; registers through the
``register_speech_providers`` hook only (never at import time). Importing this package does
not import the ``openai`` SDK: the first reply does.
"""

from __future__ import annotations

from collections.abc import Callable

from voicehost import SpeechProvider, hookimpl
from voicehost_openai_tts.config import OpenAITTSConfig
from voicehost_openai_tts.provider import OpenAISpeechProvider

__all__ = [
    "OpenAISpeechProvider",
    "OpenAITTSConfig",
    "register_speech_providers",
]


@hookimpl
def register_speech_providers(register: Callable[[SpeechProvider], None]) -> None:
    """Register the ``openai`` speech provider."""
    register(OpenAISpeechProvider())
