"""The ``deepgram`` transcription provider: Deepgram live streaming (``/v1/listen``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from voicehost import StreamingTranscriptionProvider, TranscriptionRequest, TranscriptionSession
from voicehost_deepgram_stt.config import DeepgramSTTConfig
from voicehost_deepgram_stt.session import PROVIDER_ID, DeepgramTranscriptionSession

if TYPE_CHECKING:
    from deepgram import AsyncDeepgramClient


class DeepgramTranscriptionProvider(StreamingTranscriptionProvider[DeepgramSTTConfig]):
    """Speech-to-text on Deepgram's live API (``encoding=mulaw&sample_rate=8000``).

    Config: ``[stt.deepgram]``, parsed into
    :class:`~voicehost_deepgram_stt.config.DeepgramSTTConfig` (``voicehost config schema
    deepgram`` lists its keys): ``api_key`` (from ``DEEPGRAM_API_KEY``), ``model``
    (``nova-3``), ``language`` (``en``), ``interim_results`` (true), ``endpointing`` (ms, 300,
    or false), ``utterance_end_ms`` (1000, or false), ``vad_events`` (true), ``smart_format``,
    ``punctuate``, ``keywords``, ``base_url`` (``https://api.deepgram.com``; the WebSocket
    origin is derived), ``keepalive_interval_s`` (5) and the reconnect / timeout knobs of
    :class:`voicehost.StreamingConfig`.

    The ``deepgram`` SDK is imported when the first client is built (:meth:`preload` at
    start-up, or the first session), not when the plugin is imported.
    """

    id: ClassVar[str] = PROVIDER_ID
    label: ClassVar[str] = "Deepgram live"
    config_class: ClassVar[type[DeepgramSTTConfig]] = DeepgramSTTConfig

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str], AsyncDeepgramClient] = {}

    def preload(self, config: DeepgramSTTConfig) -> None:
        """Import the SDK and build the shared client before the first call (no network)."""
        self._client(config)

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
            # lazily: importing the SDK takes ~0.5 s
            from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment

            environment = DeepgramClientEnvironment(
                base=config.base_url,
                production=config.websocket_origin,
                agent=config.websocket_origin,
                agent_rest=config.base_url,
            )
            client = AsyncDeepgramClient(api_key=config.api_key, environment=environment)
            self._clients[key] = client
        return client
