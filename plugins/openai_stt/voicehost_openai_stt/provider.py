"""The ``openai`` transcription provider: OpenAI Realtime API, transcription-only sessions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from openai import AsyncOpenAI

from voicehost.contracts import TranscriptionRequest, TranscriptionSession
from voicehost.stt_stream import StreamingTranscriptionProvider
from voicehost_openai_stt.config import DEFAULT_CONFIG, OpenAISTTConfig
from voicehost_openai_stt.session import PROVIDER_ID, OpenAITranscriptionSession


class OpenAITranscriptionProvider(StreamingTranscriptionProvider[OpenAISTTConfig]):
    """Speech-to-text on OpenAI's Realtime API (``intent=transcription``, ``audio/pcmu``).

    Config blob (``[stt.openai]``; see :data:`~voicehost_openai_stt.config.DEFAULT_CONFIG`):
    ``api_key`` (default ``${OPENAI_API_KEY}``), ``model`` (``gpt-4o-transcribe``),
    ``language``, ``prompt``, ``turn_detection`` (``server_vad`` with ``threshold`` 0.5,
    ``prefix_padding_ms`` 300, ``silence_duration_ms`` 500, or ``semantic_vad`` with
    ``eagerness``), ``noise_reduction`` (``near_field``/``far_field``/``none``), ``base_url``
    (``https://api.openai.com/v1``), ``websocket_base_url`` (derived from ``base_url`` when
    empty) and the reconnect knobs of :data:`voicehost.stt_stream.STREAM_DEFAULTS`.
    """

    id: ClassVar[str] = PROVIDER_ID
    label: ClassVar[str] = "OpenAI Realtime transcription"
    default_config: ClassVar[Mapping[str, Any]] = DEFAULT_CONFIG

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str, str], AsyncOpenAI] = {}

    def parse_config(self, config: Mapping[str, Any]) -> OpenAISTTConfig:
        """Raises ConfigError naming the ``[stt.openai]`` key at fault."""
        return OpenAISTTConfig.from_config(config)

    def open_session(
        self, request: TranscriptionRequest, config: OpenAISTTConfig
    ) -> TranscriptionSession:
        """A not yet connected session for one call, on the shared SDK client."""
        return OpenAITranscriptionSession(request, config, self._client(config))

    def _client(self, config: OpenAISTTConfig) -> AsyncOpenAI:
        """One SDK client per key and origin, shared by calls (building one costs ~20 ms; the
        realtime socket itself is per call)."""
        key = (config.api_key, config.base_url, config.websocket_base_url)
        client = self._clients.get(key)
        if client is None:
            client = AsyncOpenAI(
                api_key=config.api_key,
                base_url=config.base_url,
                websocket_base_url=config.websocket_base_url,
                max_retries=0,
            )
            self._clients[key] = client
        return client
