"""OpenAI TTS as a voicehost :class:`~voicehost.SpeechProvider` (id ``openai``).

Follows wire-protocols.md §3.1: ``POST {base_url}/audio/speech`` with
``response_format = "pcm"`` through the official ``openai`` SDK; the body is raw PCM16
little-endian, 24 kHz, mono, no header, yielded chunk by chunk as it arrives, so the first
frame reaches the call before the response ends. The host resamples to 8 kHz μ-law
(``voicehost.AudioConverter``); this plugin yields the vendor's bytes untouched, odd-length
chunks included.

The SDK (module :mod:`voicehost_openai_tts.speech`) is imported by
:meth:`~OpenAISpeechProvider.preload` at start-up, or else by the first
:meth:`~OpenAISpeechProvider.synthesize`; never when the plugin is imported or registered.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib import import_module
from typing import TYPE_CHECKING, ClassVar

from voicehost import PCM16_24K, AudioFormat, LoopClientPool, SpeechProvider, split_sentences
from voicehost_openai_tts.config import MAX_INPUT_CHARS, PROVIDER_ID, OpenAITTSConfig

if TYPE_CHECKING:
    import openai


class OpenAISpeechProvider(SpeechProvider[OpenAITTSConfig]):
    """Streamed OpenAI TTS (``/v1/audio/speech``, ``pcm`` 24 kHz).

    Config: :class:`~voicehost_openai_tts.config.OpenAITTSConfig`, parsed once by the host.
    One ``AsyncOpenAI`` client is kept per event loop and (key, base URL, timeout, retries),
    so replies of a call reuse the keep-alive connection instead of a new TLS handshake each.
    """

    id: ClassVar[str] = PROVIDER_ID
    label: ClassVar[str] = "OpenAI TTS (streamed PCM 24 kHz)"
    output_formats: ClassVar[tuple[AudioFormat, ...]] = (PCM16_24K,)
    config_class: ClassVar[type[OpenAITTSConfig]] = OpenAITTSConfig

    def __init__(self) -> None:
        self._clients: LoopClientPool[openai.AsyncOpenAI] | None = None

    def is_configured(self, config: OpenAITTSConfig) -> bool:
        """True when ``config.api_key`` is not blank."""
        return bool(config.api_key.strip())

    def preload(self, config: OpenAITTSConfig) -> None:
        """Import the ``openai`` SDK now (blocking, at start-up, off the event loop), so the
        first reply of the first call does not pay for the import on the event loop."""
        import_module("voicehost_openai_tts.speech")

    def output_format(self, config: OpenAITTSConfig) -> AudioFormat:
        """Always PCM16 LE 24 kHz mono (``response_format = "pcm"``)."""
        return PCM16_24K

    def synthesize(self, text: str, config: OpenAITTSConfig) -> AsyncIterator[bytes]:
        """Speak ``text``: raw PCM16 LE 24 kHz mono chunks, as the vendor sends them.

        Text longer than the vendor's 4096-character limit is split at sentence (else word)
        boundaries and spoken as consecutive requests, so nothing is lost. Blank text yields
        nothing and makes no request. ``aclose()`` or cancellation closes the HTTP response
        at once.

        Raises (while iterating):
            ProviderAuthError: 401/403 (``status`` set).
            ProviderError: any other non-2xx (``status`` and the vendor's ``code`` set).
            ProviderConnectionError: unreachable, timed out, or the stream dropped mid-body.
        """
        return self._synthesize(text, config)

    async def _synthesize(self, text: str, config: OpenAITTSConfig) -> AsyncIterator[bytes]:
        pieces = split_for_limit(text, MAX_INPUT_CHARS)
        if not pieces:
            return
        from voicehost_openai_tts.speech import stream_speech

        client = self._client(config)
        for piece in pieces:
            # aclosing: closing this generator closes the open request at once, not at GC.
            async with contextlib.aclosing(stream_speech(client, piece, config)) as stream:
                async for chunk in stream:
                    yield chunk

    async def aclose(self) -> None:
        """Close the pooled clients of the running event loop (their keep-alive
        connections). Optional: an addition to the contract for hosts and tests that shut
        down cleanly; synthesizing again afterwards opens new clients."""
        if self._clients is not None:
            await self._clients.aclose()

    def _client(self, config: OpenAITTSConfig) -> openai.AsyncOpenAI:
        from voicehost_openai_tts.speech import client_closed, close_client, make_client

        if self._clients is None:
            self._clients = LoopClientPool(close=close_client, is_closed=client_closed)
        key = (config.api_key, config.base_url, config.timeout, config.max_retries)
        return self._clients.get(key, lambda: make_client(config))


def split_for_limit(text: str, limit: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` characters, at sentence ends where
    possible, else at spaces, else hard; whitespace-only text gives ``[]``. Joining the pieces
    with single spaces gives back the text's words in order."""
    text = text.strip()
    if not text:
        return []
    if len(text) <= limit:
        return [text]
    sentences, rest = split_sentences(text + " ")
    units = [*sentences, rest.strip()] if rest.strip() else sentences
    pieces: list[str] = []
    current = ""
    for unit in _fit_units(units, limit):
        if current and len(current) + 1 + len(unit) > limit:
            pieces.append(current)
            current = unit
        else:
            current = f"{current} {unit}" if current else unit
    if current:
        pieces.append(current)
    return pieces


def _fit_units(units: list[str], limit: int) -> list[str]:
    """Break any unit longer than ``limit`` at spaces (or hard, for one huge word)."""
    out: list[str] = []
    for unit in units:
        while len(unit) > limit:
            cut = unit.rfind(" ", 0, limit + 1)
            if cut <= 0:
                cut = limit
            out.append(unit[:cut].strip())
            unit = unit[cut:].strip()
        if unit:
            out.append(unit)
    return out
