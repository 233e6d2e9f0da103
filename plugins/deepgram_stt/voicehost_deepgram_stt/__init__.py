"""voicehost-deepgram-stt: the ``deepgram`` speech-to-text provider (Deepgram live streaming,
``deepgram-sdk`` 7, G.711 μ-law passed through as binary frames).

Loaded through the ``voicehost`` entry-point group (``deepgram_stt``); registers through the
``register_transcription_providers`` hook only, never at import time. Importing it does not
import the ``deepgram`` SDK (that waits for the first session or the preload).
"""

from __future__ import annotations

from collections.abc import Callable

from voicehost import TranscriptionProvider, hookimpl
from voicehost_deepgram_stt.config import DeepgramSTTConfig
from voicehost_deepgram_stt.provider import DeepgramTranscriptionProvider
from voicehost_deepgram_stt.session import DeepgramTranscriptionSession

__all__ = [
    "DeepgramSTTConfig",
    "DeepgramTranscriptionProvider",
    "DeepgramTranscriptionSession",
    "register_transcription_providers",
]


@hookimpl
def register_transcription_providers(register: Callable[[TranscriptionProvider], None]) -> None:
    """Register the ``deepgram`` STT provider."""
    register(DeepgramTranscriptionProvider())
