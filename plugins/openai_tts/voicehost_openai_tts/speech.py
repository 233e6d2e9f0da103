"""The ``openai`` SDK side of the plugin: one streamed ``/audio/speech`` request.

Imported only from :meth:`OpenAISpeechProvider.synthesize
<voicehost_openai_tts.provider.OpenAISpeechProvider.synthesize>` (on the first reply), so
importing the plugin, registering it and parsing its config never load ``openai``.

Follows wire-protocols.md §3.1: ``POST {base_url}/audio/speech`` with
``response_format = "pcm"`` through ``audio.speech.with_streaming_response.create(...)``; the
body is raw PCM16 little-endian, 24 kHz, mono, no header, read with ``iter_bytes()`` and
yielded chunk by chunk as it arrives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai

from voicehost import (
    ProviderConnectionError,
    ProviderError,
    error_for_status,
    stream_dropped,
    stream_timed_out,
)
from voicehost_openai_tts.config import PROVIDER_ID, OpenAITTSConfig


def make_client(config: OpenAITTSConfig) -> openai.AsyncOpenAI:
    """An ``AsyncOpenAI`` for ``config``'s key, origin, timeout and retries."""
    return openai.AsyncOpenAI(
        api_key=config.api_key,
        base_url=config.base_url,
        timeout=config.timeout,
        max_retries=config.max_retries,
    )


async def close_client(client: openai.AsyncOpenAI) -> None:
    """Close ``client``'s connection pool."""
    await client.close()


def client_closed(client: openai.AsyncOpenAI) -> bool:
    """True once ``client`` was closed (the pool then makes a new one)."""
    return client.is_closed()


async def stream_speech(
    client: openai.AsyncOpenAI, text: str, config: OpenAITTSConfig
) -> AsyncIterator[bytes]:
    """One ``/audio/speech`` request for ``text`` (≤ 4096 characters), yielding body chunks
    (PCM16 LE 24 kHz mono, any length) as they arrive. Closing this generator (or cancelling
    its consumer) leaves the ``async with`` and closes the HTTP response at once.

    Raises:
        ProviderAuthError: 401/403 (``status`` set).
        ProviderError: any other non-2xx (``status`` and the vendor's ``code`` set).
        ProviderConnectionError: unreachable, timed out, or the stream dropped mid-body.
    """
    extra: dict[str, Any] = {}
    if config.instructions:
        extra["instructions"] = config.instructions
    received = 0
    try:
        async with client.audio.speech.with_streaming_response.create(
            model=config.model,
            voice=config.voice_parameter,  # type: ignore[arg-type]
            input=text,
            response_format="pcm",
            speed=config.speed,
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
