"""The ``deepgram`` transcription provider: Deepgram live streaming (``/v1/listen``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment

from voicehost.contracts import TranscriptionRequest, TranscriptionSession
from voicehost.stt_stream import StreamingTranscriptionProvider
from voicehost_deepgram_stt.config import DEFAULT_CONFIG, DeepgramSTTConfig
from voicehost_deepgram_stt.session import PROVIDER_ID, DeepgramTranscriptionSession


class DeepgramTranscriptionProvider(StreamingTranscriptionProvider[DeepgramSTTConfig]):
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
    default_config: ClassVar[Mapping[str, Any]] = DEFAULT_CONFIG

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str], AsyncDeepgramClient] = {}

    def parse_config(self, config: Mapping[str, Any]) -> DeepgramSTTConfig:
        """Raises ConfigError naming the ``[stt.deepgram]`` key at fault."""
        return DeepgramSTTConfig.from_config(config)

    def open_session(
        self, request: TranscriptionRequest, config: DeepgramSTTConfig
    ) -> TranscriptionSession:
        """A not yet connected session for one call, on the shared SDK client."""
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
