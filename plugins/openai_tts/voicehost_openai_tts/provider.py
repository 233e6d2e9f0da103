"""OpenAI TTS as a voicehost :class:`~voicehost.contracts.SpeechProvider` (id ``openai``).

Follows wire-protocols.md §3.1: ``POST {base_url}/audio/speech`` with
``response_format = "pcm"`` through the official ``openai`` SDK's
``audio.speech.with_streaming_response.create(...)``; the body is raw PCM16 little-endian,
24 kHz, mono, no header, read with ``iter_bytes()`` and yielded chunk by chunk as it arrives,
so the first frame reaches the call before the response ends. The host resamples to 8 kHz
μ-law (``voicehost.audio.AudioConverter``); this plugin yields the vendor's bytes untouched,
odd-length chunks included.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import httpx2
import openai

from voicehost.client_pool import LoopClientPool
from voicehost.contracts import PCM16_24K, AudioFormat, SpeechProvider
from voicehost.errors import (
    ProviderConnectionError,
    ProviderError,
    error_for_status,
    stream_dropped,
    stream_timed_out,
)
from voicehost.provider_config import is_set
from voicehost.text import split_sentences
from voicehost_openai_tts.config import DEFAULT_CONFIG, MAX_INPUT_CHARS, OpenAITTSSettings

PROVIDER_ID = "openai"


class OpenAISpeechProvider(SpeechProvider):
    """Streamed OpenAI TTS (``/v1/audio/speech``, ``pcm`` 24 kHz).

    Config: see :mod:`voicehost_openai_tts.config`. One ``AsyncOpenAI`` client is kept per
    event loop and (key, base URL, timeout, retries), so replies of a call reuse the
    keep-alive connection instead of a new TLS handshake each.
    """

    id: ClassVar[str] = PROVIDER_ID
    label: ClassVar[str] = "OpenAI TTS (streamed PCM 24 kHz)"
    output_formats: ClassVar[tuple[AudioFormat, ...]] = (PCM16_24K,)
    default_config: ClassVar[Mapping[str, Any]] = DEFAULT_CONFIG

    def __init__(self) -> None:
        self._clients: LoopClientPool[openai.AsyncOpenAI] = LoopClientPool(
            close=lambda client: client.close(), is_closed=lambda client: client.is_closed()
        )

    def is_configured(self, config: Mapping[str, Any]) -> bool:
        """True when an API key is present (not empty, not an unresolved ``${VAR}``)."""
        return is_set(config, "api_key")

    def validate_config(self, config: Mapping[str, Any]) -> None:
        """Raises ConfigError naming the bad key (see :class:`OpenAITTSSettings`)."""
        OpenAITTSSettings.from_config(config)

    def synthesize(self, text: str, config: Mapping[str, Any]) -> AsyncIterator[bytes]:
        """Speak ``text``: raw PCM16 LE 24 kHz mono chunks, as the vendor sends them.

        Text longer than the vendor's 4096-character limit is split at sentence (else word)
        boundaries and spoken as consecutive requests, so nothing is lost. Blank text yields
        nothing and makes no request.

        Raises:
            ConfigError: ``config`` is invalid (at the call, before any request).

        Raises (while iterating):
            ProviderAuthError: 401/403 (``status`` set).
            ProviderError: any other non-2xx (``status`` and the vendor's ``code`` set).
            ProviderConnectionError: unreachable, timed out, or the stream dropped mid-body.
        """
        settings = OpenAITTSSettings.from_config(config)
        return self._synthesize(text, settings)

    async def _synthesize(self, text: str, settings: OpenAITTSSettings) -> AsyncIterator[bytes]:
        client = self._client(settings)
        for piece in split_for_limit(text, MAX_INPUT_CHARS):
            # aclosing: closing this generator closes the open request at once, not at GC.
            async with contextlib.aclosing(_stream_one(client, piece, settings)) as stream:
                async for chunk in stream:
                    yield chunk

    async def aclose(self) -> None:
        """Close the pooled clients of the running event loop (their keep-alive
        connections). Optional: an addition to the contract for hosts and tests that shut
        down cleanly; synthesizing again afterwards opens new clients."""
        await self._clients.aclose()

    def _client(self, settings: OpenAITTSSettings) -> openai.AsyncOpenAI:
        key = (settings.api_key, settings.base_url, settings.timeout, settings.max_retries)
        return self._clients.get(
            key,
            lambda: openai.AsyncOpenAI(
                api_key=settings.api_key,
                base_url=settings.base_url,
                timeout=settings.timeout,
                max_retries=settings.max_retries,
            ),
        )


async def _stream_one(
    client: openai.AsyncOpenAI, text: str, settings: OpenAITTSSettings
) -> AsyncIterator[bytes]:
    """One ``/audio/speech`` request, yielding body chunks; closing this generator (or
    cancelling its consumer) leaves the ``async with`` and closes the HTTP response."""
    extra: dict[str, Any] = {}
    if settings.instructions:
        extra["instructions"] = settings.instructions
    received = 0
    try:
        async with client.audio.speech.with_streaming_response.create(
            model=settings.model,
            # A custom voice goes as a voice object {"id": "voice_…"}; built-ins by name.
            voice={"id": settings.voice} if settings.voice.startswith("voice_") else settings.voice,
            input=text,
            response_format="pcm",
            speed=settings.speed,
            **extra,
        ) as response:
            async for chunk in response.iter_bytes():
                if chunk:
                    received += len(chunk)
                    yield chunk
    except openai.APIStatusError as exc:
        raise _status_error(exc) from exc
    except (openai.APITimeoutError, httpx2.TimeoutException) as exc:
        raise stream_timed_out(PROVIDER_ID, received) from exc
    except openai.APIConnectionError as exc:
        raise ProviderConnectionError(PROVIDER_ID, f"cannot reach the API: {exc}") from exc
    except httpx2.TransportError as exc:
        raise stream_dropped(PROVIDER_ID, received, str(exc)) from exc


def _status_error(exc: openai.APIStatusError) -> ProviderError:
    code = exc.code if isinstance(exc.code, str) else None
    body = exc.body if isinstance(exc.body, dict) else {}
    message = str(body.get("message") or exc.message or f"HTTP {exc.status_code}")
    return error_for_status(PROVIDER_ID, exc.status_code, message, code=code)


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
