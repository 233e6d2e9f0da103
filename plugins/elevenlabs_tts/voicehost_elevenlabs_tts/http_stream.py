"""ElevenLabs HTTP streaming synthesis through the official SDK.

``POST {base_url}/v1/text-to-speech/{voice_id}/stream?output_format=ulaw_8000`` with header
``xi-api-key`` and body ``{"text", "model_id", "voice_settings"}`` (wire-protocols.md §5.1),
sent by ``AsyncElevenLabs(api_key=…, base_url=…).text_to_speech.stream(...)``. The SDK yields
the chunked body as it arrives (1024-byte reads); every chunk is yielded on untouched: raw
μ-law 8 kHz, any length.

Imported only when the provider first speaks in ``http`` mode (it loads the SDK and httpx).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
from elevenlabs import VoiceSettings
from elevenlabs.client import AsyncElevenLabs
from elevenlabs.core.api_error import ApiError

from voicehost import LoopClientPool, ProviderConnectionError, stream_timed_out
from voicehost_elevenlabs_tts.config import OUTPUT_FORMAT, ElevenLabsConfig
from voicehost_elevenlabs_tts.errors import PROVIDER_ID, dropped, status_error


class ClientPool:
    """One ``AsyncElevenLabs`` per event loop and (key, base URL, timeout)
    (:class:`voicehost.LoopClientPool`): replies of a call reuse the keep-alive
    connection instead of paying a TLS handshake each. The pool owns each client's
    ``httpx.AsyncClient`` (passed to the SDK as ``httpx_client``) and closes it in
    :meth:`aclose`."""

    def __init__(self) -> None:
        self._pool: LoopClientPool[tuple[AsyncElevenLabs, httpx.AsyncClient]] = LoopClientPool(
            close=lambda pair: pair[1].aclose(), is_closed=lambda pair: pair[1].is_closed
        )

    def get(self, config: ElevenLabsConfig) -> AsyncElevenLabs:
        """The client for ``config`` on the running loop, made on first use."""

        def make() -> tuple[AsyncElevenLabs, httpx.AsyncClient]:
            http = httpx.AsyncClient(timeout=config.timeout, follow_redirects=True)
            # api_key passed explicitly: the SDK reads ELEVENLABS_API_KEY only at import time.
            client = AsyncElevenLabs(
                api_key=config.api_key,
                base_url=config.base_url,
                timeout=config.timeout,
                httpx_client=http,
            )
            return client, http

        key = (config.api_key, config.base_url, config.timeout)
        return self._pool.get(key, make)[0]

    async def aclose(self) -> None:
        """Close the clients of the running event loop (their keep-alive connections)."""
        await self._pool.aclose()


async def stream_http(
    client: AsyncElevenLabs, text: str, config: ElevenLabsConfig
) -> AsyncIterator[bytes]:
    """Speak ``text`` over one streamed HTTP request: μ-law 8 kHz chunks as they arrive.

    Closing this generator (``aclose()``, or cancelling the task iterating it) exits the
    SDK's ``async with`` around the response, which closes the HTTP response at once.

    Raises:
        ProviderAuthError: 401/403.
        ProviderError: any other non-2xx, with ``status`` and the vendor's ``code``.
        ProviderConnectionError: unreachable, timed out, or the body ended early.
    """
    options: dict[str, Any] = {}
    if voice_settings := config.voice_settings.to_request():
        options["voice_settings"] = VoiceSettings(**voice_settings)
    if config.optimize_streaming_latency:
        options["optimize_streaming_latency"] = config.optimize_streaming_latency
    received = 0
    stream = client.text_to_speech.stream(
        config.voice_id,
        text=text,
        model_id=config.model_id,
        output_format=OUTPUT_FORMAT,
        # chunk_size None: hand each body chunk over as it arrives (httpx semantics). The
        # SDK's 1024-byte default would hold back up to 128 ms of μ-law before the first frame.
        request_options={"chunk_size": cast(int, None)},
        **options,
    )
    try:
        async for chunk in stream:
            if chunk:
                received += len(chunk)
                yield chunk
    except ApiError as exc:
        raise status_error(exc.status_code or 0, exc.body) from exc
    except httpx.TimeoutException as exc:
        raise stream_timed_out(PROVIDER_ID, received) from exc
    except httpx.ConnectError as exc:
        raise ProviderConnectionError(PROVIDER_ID, f"cannot reach the API: {exc}") from exc
    except httpx.TransportError as exc:
        raise dropped(received, str(exc) or type(exc).__name__) from exc
    finally:
        await stream.aclose()
