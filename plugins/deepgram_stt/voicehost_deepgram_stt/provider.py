"""The ``deepgram`` transcription provider: Deepgram live streaming (``/v1/listen``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment
from voicehost.contracts import (
    MULAW_8K,
    AudioFormat,
    TranscriptionCapabilities,
    TranscriptionProvider,
    TranscriptionRequest,
    TranscriptionSession,
)
from voicehost.errors import ConfigError

from voicehost_deepgram_stt.config import DEFAULT_CONFIG, DeepgramSTTConfig
from voicehost_deepgram_stt.session import PROVIDER_ID, DeepgramTranscriptionSession


class DeepgramTranscriptionProvider(TranscriptionProvider):
    """Speech-to-text on Deepgram's live API (``encoding=mulaw&sample_rate=8000``).

    Config blob (``[stt.deepgram]``; see :data:`~voicehost_deepgram_stt.config.DEFAULT_CONFIG`):
    ``api_key`` (default ``${DEEPGRAM_API_KEY}``), ``model`` (``nova-3``), ``language``,
    ``interim_results`` (true), ``endpointing`` (ms, 300), ``utterance_end_ms`` (1000),
    ``vad_events`` (true), ``smart_format``, ``punctuate``, ``keywords``, ``base_url``
    (``https://api.deepgram.com``; the WebSocket origin is derived), ``keepalive_interval_s``
    (5) and the reconnect knobs of :data:`voicehost.stt_stream.STREAM_DEFAULTS`.
    """

    id: ClassVar[str] = PROVIDER_ID
    label: ClassVar[str] = "Deepgram live"
    input_formats: ClassVar[tuple[AudioFormat, ...]] = (MULAW_8K,)
    capabilities: ClassVar[TranscriptionCapabilities] = TranscriptionCapabilities(
        interim_results=True, speech_events=True
    )
    default_config: ClassVar[Mapping[str, Any]] = DEFAULT_CONFIG

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str], AsyncDeepgramClient] = {}

    def is_configured(self, config: Mapping[str, Any]) -> bool:
        """True when the blob has a non-empty ``api_key``."""
        key = config.get("api_key")
        return isinstance(key, str) and bool(key.strip()) and "${" not in key

    def validate_config(self, config: Mapping[str, Any]) -> None:
        """Raises ConfigError naming the ``[stt.deepgram]`` key at fault."""
        DeepgramSTTConfig.from_config(config)

    def create_session(self, request: TranscriptionRequest) -> TranscriptionSession:
        """A not yet connected session for one call.

        Raises:
            ConfigError: the blob is invalid, or ``request.input_format`` is not μ-law 8 kHz.
        """
        if request.input_format != MULAW_8K:
            raise ConfigError(
                f"the deepgram STT provider takes {MULAW_8K} audio, not {request.input_format}"
            )
        config = DeepgramSTTConfig.from_config(request.config)
        return DeepgramTranscriptionSession(request, config, self._client(config))

    def _client(self, config: DeepgramSTTConfig) -> AsyncDeepgramClient:
        """One SDK client per key and origin, shared by calls (building one costs ~20 ms; the
        live socket itself is per call, with its own ``x-deepgram-session-id``)."""
        key = (config.api_key, config.base_url)
        client = self._clients.get(key)
        if client is None:
            environment = DeepgramClientEnvironment(
                base=config.base_url,
                production=config.websocket_base_url,
                agent=config.websocket_base_url,
                agent_rest=config.base_url,
            )
            client = AsyncDeepgramClient(api_key=config.api_key, environment=environment)
            self._clients[key] = client
        return client
