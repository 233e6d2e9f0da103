"""ElevenLabs as a voicehost :class:`~voicehost.contracts.SpeechProvider` (id ``elevenlabs``).

Audio is requested as ``ulaw_8000`` (G.711 μ-law, 8 kHz, mono, headerless) — Twilio's own
format — so the host only re-frames it into 160-byte / 20 ms frames; no conversion.

Two modes (config ``mode``):

- ``"http"`` (default): one ``POST …/v1/text-to-speech/{voice_id}/stream`` per text through
  the official SDK (:mod:`voicehost_elevenlabs_tts.http_stream`). A responder's streamed text
  goes through the contract's default :meth:`SpeechProvider.synthesize_stream`, one request a
  sentence.
- ``"websocket"``: the ``stream-input`` socket (:mod:`voicehost_elevenlabs_tts.websocket_stream`);
  :meth:`synthesize_stream` sends text chunks as they arrive on one socket, and
  :meth:`synthesize` sends its one text the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import Any, ClassVar

from voicehost.contracts import MULAW_8K, AudioFormat, SpeechProvider
from voicehost.provider_config import is_set
from voicehost_elevenlabs_tts.config import DEFAULT_CONFIG, ElevenLabsSettings
from voicehost_elevenlabs_tts.errors import PROVIDER_ID
from voicehost_elevenlabs_tts.http_stream import ClientPool, stream_http
from voicehost_elevenlabs_tts.websocket_stream import stream_websocket


class ElevenLabsSpeechProvider(SpeechProvider):
    """Streamed ElevenLabs TTS in μ-law 8 kHz (config: :mod:`voicehost_elevenlabs_tts.config`)."""

    id: ClassVar[str] = PROVIDER_ID
    label: ClassVar[str] = "ElevenLabs TTS (streamed μ-law 8 kHz)"
    output_formats: ClassVar[tuple[AudioFormat, ...]] = (MULAW_8K,)
    default_config: ClassVar[Mapping[str, Any]] = DEFAULT_CONFIG

    def __init__(self) -> None:
        self._clients = ClientPool()

    async def aclose(self) -> None:
        """Close the pooled HTTP clients of the running event loop (their keep-alive
        connections). Optional: an addition to the contract for hosts and tests that shut
        down cleanly; synthesizing again afterwards opens new clients."""
        await self._clients.aclose()

    def is_configured(self, config: Mapping[str, Any]) -> bool:
        """True when an API key and a voice id are present."""
        return is_set(config, "api_key") and is_set(config, "voice_id")

    def validate_config(self, config: Mapping[str, Any]) -> None:
        """Raises ConfigError naming the bad key (unknown mode, missing voice_id, a
        voice setting out of range …)."""
        ElevenLabsSettings.from_config(config)

    def synthesize(self, text: str, config: Mapping[str, Any]) -> AsyncIterator[bytes]:
        """Speak ``text``: raw μ-law 8 kHz chunks as the vendor sends them (any length).

        Blank text yields nothing and makes no request. ``aclose()`` or cancellation closes
        the HTTP response / socket at once.

        Raises:
            ConfigError: ``config`` is invalid (at the call, before any request).

        Raises (while iterating):
            ProviderAuthError: 401/403 or an invalid-key error message.
            ProviderError: other vendor errors (``status``, ``code`` set).
            ProviderConnectionError: unreachable, timed out, or the stream dropped.
        """
        settings = ElevenLabsSettings.from_config(config)
        return self._synthesize(text, settings)

    async def _synthesize(self, text: str, settings: ElevenLabsSettings) -> AsyncIterator[bytes]:
        if not text.strip():
            return
        if settings.mode == "websocket":
            stream = stream_websocket(_once(text), settings)
        else:
            stream = stream_http(self._clients.get(settings), text.strip(), settings)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()

    def synthesize_stream(
        self, text: AsyncIterable[str], config: Mapping[str, Any]
    ) -> AsyncIterator[bytes]:
        """Speak streamed text. ``websocket`` mode: one ``stream-input`` socket, each piece
        sent as it arrives. ``http`` mode: the contract's default (a request a sentence).

        Raises: as :meth:`synthesize`, plus whatever iterating ``text`` raised.
        """
        settings = ElevenLabsSettings.from_config(config)
        if settings.mode == "websocket":
            return stream_websocket(text, settings)
        return super().synthesize_stream(text, config)


async def _once(text: str) -> AsyncIterator[str]:
    yield text
