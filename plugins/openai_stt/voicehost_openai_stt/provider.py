"""The ``openai`` transcription provider: OpenAI Realtime API, transcription-only sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from voicehost import StreamingTranscriptionProvider, TranscriptionRequest, TranscriptionSession
from voicehost_openai_stt.config import OpenAISTTConfig
from voicehost_openai_stt.session import PROVIDER_ID, OpenAITranscriptionSession

if TYPE_CHECKING:
    from openai import AsyncOpenAI


class OpenAITranscriptionProvider(StreamingTranscriptionProvider[OpenAISTTConfig]):
    """Speech-to-text on OpenAI's Realtime API (``intent=transcription``, ``audio/pcmu``).

    Config: ``[stt.openai]``, parsed into :class:`~voicehost_openai_stt.config.OpenAISTTConfig`
    (``voicehost config schema openai`` lists its keys): ``api_key`` (from
    ``OPENAI_API_KEY``), ``model`` (``gpt-4o-transcribe``), ``language``, ``prompt``,
    ``turn_detection`` (``server_vad`` with ``threshold`` 0.5, ``prefix_padding_ms`` 300,
    ``silence_duration_ms`` 500, or ``semantic_vad`` with ``eagerness``),
    ``noise_reduction`` (``near_field``/``far_field``/``none``), ``base_url``
    (``https://api.openai.com/v1``), ``websocket_base_url`` (derived from ``base_url`` when
    empty) and the reconnect / timeout knobs of :class:`voicehost.StreamingConfig`.

    The ``openai`` SDK is imported when the first client is built (:meth:`preload` at
    start-up, or the first session), not when the plugin is imported.
    """

    id: ClassVar[str] = PROVIDER_ID
    label: ClassVar[str] = "OpenAI Realtime transcription"
    config_class: ClassVar[type[OpenAISTTConfig]] = OpenAISTTConfig

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str, str], AsyncOpenAI] = {}

    def preload(self, config: OpenAISTTConfig) -> None:
        """Import the SDK and build the shared client before the first call (no network)."""
        self._client(config)

    async def aclose(self) -> None:
        """Close the shared SDK clients (their HTTP connection pools). Optional: for hosts
        and tests that shut down cleanly; a later session makes new ones."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()

    def open_session(
        self, request: TranscriptionRequest, config: OpenAISTTConfig
    ) -> TranscriptionSession:
        """A not yet connected session for one call, on the shared SDK client."""
        return OpenAITranscriptionSession(request, config, self._client(config))

    def _client(self, config: OpenAISTTConfig) -> AsyncOpenAI:
        """One SDK client per key and origin, shared by calls (building one costs ~20 ms; the
        realtime socket itself is per call)."""
        key = (config.api_key, config.base_url, config.websocket_origin)
        client = self._clients.get(key)
        if client is None:
            from openai import AsyncOpenAI  # lazily: importing the SDK takes ~0.5 s

            client = AsyncOpenAI(
                api_key=config.api_key,
                base_url=config.base_url,
                websocket_base_url=config.websocket_origin,
                max_retries=0,
            )
            self._clients[key] = client
        return client
