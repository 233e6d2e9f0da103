"""The ``whisper`` STT provider: offline streaming transcription with faster-whisper.

Importing this module is cheap: the session, the engine (numpy, faster-whisper, CTranslate2,
the bundled weights) and the Silero VAD (ONNX Runtime) are imported by :meth:`preload` and
:meth:`create_session`, so listing plugins or checking a config loads no model library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from voicehost import (
    MULAW_8K,
    PCM16_8K,
    PCM16_16K,
    AudioFormat,
    TranscriptionCapabilities,
    TranscriptionProvider,
    TranscriptionRequest,
)
from voicehost_whisper_stt.config import PROVIDER_ID, WhisperConfig

if TYPE_CHECKING:
    from voicehost_whisper_stt.session import WhisperSession


class WhisperProvider(TranscriptionProvider[WhisperConfig]):
    """Local Whisper (faster-whisper / CTranslate2) with Silero VAD endpointing.

    Input formats: μ-law 8 kHz first, so the host passes Twilio's bytes through untouched and
    the session converts them to the 16 kHz PCM16 that Silero VAD and Whisper run on (G.711
    decode plus a stateful soxr resampler, ``voicehost.AudioConverter``); PCM16 at 16 kHz (no
    conversion) and 8 kHz are accepted too.

    Config: :class:`~voicehost_whisper_stt.config.WhisperConfig` (``[stt.whisper]``). The
    model is shared by every call in the process and loaded by :meth:`preload` or on the
    first :meth:`WhisperSession.connect`.
    """

    id: ClassVar[str] = PROVIDER_ID
    label: ClassVar[str] = "Whisper (offline, faster-whisper)"
    config_class: ClassVar[type[WhisperConfig]] = WhisperConfig
    input_formats: ClassVar[tuple[AudioFormat, ...]] = (MULAW_8K, PCM16_16K, PCM16_8K)
    capabilities: ClassVar[TranscriptionCapabilities] = TranscriptionCapabilities(
        interim_results=True, speech_events=True
    )

    def preload(self, config: WhisperConfig) -> None:
        """Load the Silero VAD and the Whisper model for ``config`` now, so the first call
        does not wait for them. Blocking: run it off the event loop, e.g.
        ``await asyncio.to_thread(provider.preload, config)`` at server start-up.

        Raises:
            ProviderError: the model could not be loaded (missing weights, not in the local
                Hugging Face cache, unreadable directory).
        """
        from voicehost_whisper_stt import vad
        from voicehost_whisper_stt.engine import get_engine

        vad.preload()
        get_engine(config).load()

    def create_session(self, request: TranscriptionRequest) -> WhisperSession:
        """Make one call's session (not connected; the model loads in ``connect``).

        ``request.config`` is the parsed :class:`WhisperConfig`.

        Raises:
            TypeError: ``request.config`` is not a :class:`WhisperConfig`.
            ValueError: ``request.input_format`` is not one of :attr:`input_formats`.
        """
        if request.input_format not in self.input_formats:
            raise ValueError(
                f"whisper: unsupported input format {request.input_format}; "
                f"accepted: {', '.join(str(f) for f in self.input_formats)}"
            )
        from voicehost_whisper_stt.session import WhisperSession

        return WhisperSession(request)
