"""voicehost-openai-stt: the ``openai`` speech-to-text provider (OpenAI Realtime API,
transcription-only sessions, G.711 μ-law passed through as ``audio/pcmu``).

Loaded through the ``voicehost`` entry-point group (``openai_stt``); registers through the
``register_transcription_providers`` hook only, never at import time. Importing it does not
import the ``openai`` SDK (that waits for the first session or the preload).
"""

from __future__ import annotations

from collections.abc import Callable

from voicehost import TranscriptionProvider, hookimpl
from voicehost_openai_stt.config import OpenAISTTConfig, TurnDetection
from voicehost_openai_stt.provider import OpenAITranscriptionProvider
from voicehost_openai_stt.session import OpenAITranscriptionSession

__all__ = [
    "OpenAISTTConfig",
    "OpenAITranscriptionProvider",
    "OpenAITranscriptionSession",
    "TurnDetection",
    "register_transcription_providers",
]


@hookimpl
def register_transcription_providers(register: Callable[[TranscriptionProvider], None]) -> None:
    """Register the ``openai`` STT provider."""
    register(OpenAITranscriptionProvider())
