"""The ``whisper`` STT provider: offline streaming transcription with faster-whisper."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from voicehost.contracts import (
    MULAW_8K,
    PCM16_8K,
    PCM16_16K,
    AudioFormat,
    TranscriptionCapabilities,
    TranscriptionProvider,
    TranscriptionRequest,
)
from voicehost_whisper_stt import vad
from voicehost_whisper_stt.config import DEFAULT_CONFIG, parse_config
from voicehost_whisper_stt.engine import PROVIDER_ID, get_engine
from voicehost_whisper_stt.session import WhisperSession


class WhisperProvider(TranscriptionProvider):
    """Local Whisper (faster-whisper / CTranslate2) with Silero VAD endpointing.

    Input formats: μ-law 8 kHz first, so the host passes Twilio's bytes through untouched and
    the session converts them to the 16 kHz PCM16 that Silero VAD and Whisper run on (G.711
    decode plus a stateful soxr resampler, ``voicehost.audio.AudioConverter``); PCM16 at
    16 kHz (no conversion) and 8 kHz are accepted too.

    Config: see :data:`voicehost_whisper_stt.config.DEFAULT_CONFIG`. The model is shared by
    every call in the process and loaded on the first :meth:`WhisperSession.connect`.
    """

    id: ClassVar[str] = PROVIDER_ID
    label: ClassVar[str] = "Whisper (offline, faster-whisper)"
    input_formats: ClassVar[tuple[AudioFormat, ...]] = (MULAW_8K, PCM16_16K, PCM16_8K)
    capabilities: ClassVar[TranscriptionCapabilities] = TranscriptionCapabilities(
        interim_results=True, speech_events=True
    )
    default_config: ClassVar[Mapping[str, Any]] = DEFAULT_CONFIG

    def validate_config(self, config: Mapping[str, Any]) -> None:
        """Raises ConfigError naming the ``[stt.whisper]`` key at fault."""
        parse_config(config)

    def preload(self, config: Mapping[str, Any]) -> None:
        """Load the Silero VAD and the Whisper model for ``config`` now, so the first call
        does not wait for them. Blocking: run it off the event loop, e.g.
        ``await asyncio.to_thread(provider.preload, config)`` at server start-up.

        Raises:
            ConfigError: the config blob is invalid.
            ProviderError: the model could not be loaded.
        """
        settings = parse_config(config)
        vad.preload()
        get_engine(settings).load()

    def create_session(self, request: TranscriptionRequest) -> WhisperSession:
        """Make one call's session (not connected; the model loads in ``connect``).

        Raises:
            ConfigError: the config blob is invalid.
            ValueError: ``request.input_format`` is not one of :attr:`input_formats`.
        """
        if request.input_format not in self.input_formats:
            raise ValueError(
                f"whisper: unsupported input format {request.input_format}; "
                f"accepted: {', '.join(str(f) for f in self.input_formats)}"
            )
        return WhisperSession(parse_config(request.config), request)
