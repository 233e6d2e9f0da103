"""The ``openai-realtime`` conversation provider: OpenAI Realtime speech-to-speech."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from voicehost import ConversationProvider, ConversationRequest, ConversationSession
from voicehost_openai_realtime.config import OpenAIRealtimeConfig
from voicehost_openai_realtime.events import PROVIDER_ID
from voicehost_openai_realtime.session import OpenAIRealtimeSession

if TYPE_CHECKING:
    from openai import AsyncOpenAI


class OpenAIRealtimeProvider(ConversationProvider[OpenAIRealtimeConfig]):
    """Speech-to-speech conversations on OpenAI's Realtime API (``gpt-realtime``), μ-law
    8 kHz in and out (``audio/pcmu``), so Twilio's bytes pass through both ways.

    Config: ``[conversation.openai-realtime]``, parsed into
    :class:`~voicehost_openai_realtime.config.OpenAIRealtimeConfig` (``voicehost config schema
    openai-realtime`` lists its keys): ``api_key`` (from ``OPENAI_API_KEY``), ``base_url``,
    ``model``, ``voice``, ``eagerness``, ``interrupt_response``, ``create_response``,
    ``transcription_model``, ``temperature``, ``speed``, ``connect_timeout_s`` and the keys of
    :class:`voicehost.ConversationConfig`.

    The ``openai`` SDK is imported when the first client is built (:meth:`preload` at
    start-up, or the first session), not when the plugin is imported.
    """

    id: ClassVar[str] = PROVIDER_ID
    label: ClassVar[str] = "OpenAI Realtime (speech-to-speech)"
    config_class: ClassVar[type[OpenAIRealtimeConfig]] = OpenAIRealtimeConfig

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str], AsyncOpenAI] = {}

    def is_configured(self, config: OpenAIRealtimeConfig) -> bool:
        """True when an API key is set."""
        return bool(config.api_key)

    def preload(self, config: OpenAIRealtimeConfig) -> None:
        """Import the SDK and build the shared client before the first call (no network)."""
        self._client(config)

    async def aclose(self) -> None:
        """Close the shared SDK clients (their HTTP pools). Optional: for hosts and tests
        that shut down cleanly; a later session makes new ones."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()

    def create_session(self, request: ConversationRequest) -> ConversationSession:
        """A not yet connected session for one call, on the shared SDK client.

        Raises:
            TypeError: ``request.config`` is not an ``OpenAIRealtimeConfig``.
        """
        config = request.config
        if not isinstance(config, OpenAIRealtimeConfig):
            raise TypeError("request.config must be an OpenAIRealtimeConfig")
        return OpenAIRealtimeSession(request, self._client(config))

    def _client(self, config: OpenAIRealtimeConfig) -> AsyncOpenAI:
        """One SDK client per key and origin, shared by calls (building one costs ~20 ms; the
        realtime socket itself is per call)."""
        key = (config.api_key, config.base_url)
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
