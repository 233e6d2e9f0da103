"""ElevenLabs as a voicehost :class:`~voicehost.SpeechProvider` (id ``elevenlabs``).

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

The stream module of the configured mode (and with it the ``elevenlabs`` SDK and ``httpx`` or
``websockets``) is imported by :meth:`~ElevenLabsSpeechProvider.preload` at start-up, or else
by the first reply that needs it; never when the plugin is imported or registered.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from importlib import import_module
from typing import TYPE_CHECKING, ClassVar

from voicehost import MULAW_8K, AudioFormat, SpeechProvider
from voicehost_elevenlabs_tts.config import PROVIDER_ID, ElevenLabsConfig

if TYPE_CHECKING:
    from voicehost_elevenlabs_tts.http_stream import ClientPool


class ElevenLabsSpeechProvider(SpeechProvider[ElevenLabsConfig]):
    """Streamed ElevenLabs TTS in μ-law 8 kHz.

    Config: :class:`~voicehost_elevenlabs_tts.config.ElevenLabsConfig`, parsed once by the
    host. In ``http`` mode one SDK client is kept per event loop and (key, base URL,
    timeout), so replies of a call reuse the keep-alive connection.
    """

    id: ClassVar[str] = PROVIDER_ID
    label: ClassVar[str] = "ElevenLabs TTS (streamed μ-law 8 kHz)"
    output_formats: ClassVar[tuple[AudioFormat, ...]] = (MULAW_8K,)
    config_class: ClassVar[type[ElevenLabsConfig]] = ElevenLabsConfig

    def __init__(self) -> None:
        self._pool: ClientPool | None = None

    async def aclose(self) -> None:
        """Close the pooled HTTP clients of the running event loop (their keep-alive
        connections). Optional: an addition to the contract for hosts and tests that shut
        down cleanly; synthesizing again afterwards opens new clients."""
        if self._pool is not None:
            await self._pool.aclose()

    def is_configured(self, config: ElevenLabsConfig) -> bool:
        """True when ``config.api_key`` is not blank (``voice_id`` is required by the config
        class itself)."""
        return bool(config.api_key.strip())

    def preload(self, config: ElevenLabsConfig) -> None:
        """Import the stream module ``config.mode`` uses (the SDK with ``httpx`` or
        ``websockets``) now — blocking, at start-up, off the event loop — so the first reply
        does not pay for the import on the event loop."""
        module = "websocket_stream" if config.mode == "websocket" else "http_stream"
        import_module(f"voicehost_elevenlabs_tts.{module}")

    def output_format(self, config: ElevenLabsConfig) -> AudioFormat:
        """Always μ-law 8 kHz mono (``output_format = "ulaw_8000"``), in both modes."""
        return MULAW_8K

    def synthesize(self, text: str, config: ElevenLabsConfig) -> AsyncIterator[bytes]:
        """Speak ``text``: raw μ-law 8 kHz chunks as the vendor sends them (any length).

        Blank text yields nothing and makes no request. ``aclose()`` or cancellation closes
        the HTTP response / socket at once.

        Raises (while iterating):
            ProviderAuthError: 401/403 or an invalid-key error message.
            ProviderError: other vendor errors (``status``, ``code`` set).
            ProviderConnectionError: unreachable, timed out, or the stream dropped.
        """
        return self._synthesize(text, config)

    async def _synthesize(self, text: str, config: ElevenLabsConfig) -> AsyncIterator[bytes]:
        if not text.strip():
            return
        if config.mode == "websocket":
            from voicehost_elevenlabs_tts.websocket_stream import stream_websocket

            stream = stream_websocket(_once(text), config)
        else:
            from voicehost_elevenlabs_tts.http_stream import stream_http

            stream = stream_http(self._clients().get(config), text.strip(), config)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()

    def synthesize_stream(
        self, text: AsyncIterable[str], config: ElevenLabsConfig
    ) -> AsyncIterator[bytes]:
        """Speak streamed text. ``websocket`` mode: one ``stream-input`` socket, each piece
        sent as it arrives. ``http`` mode: the contract's default (a request a sentence).

        Raises (while iterating): as :meth:`synthesize`, plus whatever iterating ``text``
        raised.
        """
        if config.mode == "websocket":
            return self._stream_websocket(text, config)
        return super().synthesize_stream(text, config)

    async def _stream_websocket(
        self, text: AsyncIterable[str], config: ElevenLabsConfig
    ) -> AsyncIterator[bytes]:
        from voicehost_elevenlabs_tts.websocket_stream import stream_websocket

        stream = stream_websocket(text, config)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()

    def _clients(self) -> ClientPool:
        if self._pool is None:
            from voicehost_elevenlabs_tts.http_stream import ClientPool

            self._pool = ClientPool()
        return self._pool


async def _once(text: str) -> AsyncIterator[str]:
    yield text
