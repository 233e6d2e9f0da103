"""ElevenLabs WebSocket ``stream-input``: text chunks in as they arrive, μ-law audio out.

Protocol (wire-protocols.md §5.2)::

    GET {ws(s) base}/v1/text-to-speech/{voice_id}/stream-input?model_id=…&output_format=ulaw_8000
        xi-api-key: <key>
    → {"text": " ", "voice_settings": {…}, "generation_config": {"chunk_length_schedule": [50]}}
    → {"text": "Hello there. ", "flush": true}        (one message per whole-word piece)
    → {"text": ""}                                     (end of input)
    ← {"audio": "<base64 μ-law>", "isFinal": null, …}  (any number, any size)
    ← {"isFinal": true}, then close 1000

Choice: this module drives the documented protocol with the ``websockets`` asyncio client
and the SDK's own message types (``InitializeConnection``, ``SendText``, ``CloseConnection``,
``AudioOutput``, ``FinalOutput``, ``RealtimeVoiceSettings``, ``GenerationConfig``); the URL is
``ElevenLabsConfig.stream_input_url`` (the SDK's ``build_ws_url`` rule: http→ws,
https→wss). It does not use the SDK's ``text_to_speech.convert_realtime`` because in SDK
2.78 that exists only on the *sync* client (``websockets.sync``: it would block the event
loop every call shares), always dials ``wss://`` from a private ``_ws_base_url``, polls for
audio with 10 ms receive timeouts and never sends ``flush``.

Text handling: pieces are cut at whitespace so a word is never split across messages, each
ends with one space as the vendor requires, and a piece that ends a sentence carries
``"flush": true`` so its audio is generated without waiting for more text.

Imported only when the provider first speaks in ``websocket`` mode (it loads the SDK and
``websockets``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import websockets
from elevenlabs.types import (
    AudioOutput,
    CloseConnection,
    FinalOutput,
    GenerationConfig,
    InitializeConnection,
    RealtimeVoiceSettings,
    SendText,
)
from elevenlabs.version import __version__ as sdk_version
from websockets.asyncio.client import ClientConnection, connect

from voicehost import ProviderConnectionError, ProviderError
from voicehost_elevenlabs_tts.config import ElevenLabsConfig
from voicehost_elevenlabs_tts.errors import PROVIDER_ID, dropped, message_error, status_error

_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*\s*$")
#: Seconds to wait for the vendor's close frame after ours (barge-in must not linger).
CLOSE_TIMEOUT_S = 1.0


async def word_pieces(texts: AsyncIterable[str]) -> AsyncIterator[tuple[str, bool]]:
    """Re-cut streamed text at whitespace: ``(piece, ends_sentence)``; each piece ends with a
    single space and holds whole words only; the unfinished last word waits for more text
    (or the end of input). Whitespace-only input yields nothing."""
    buffer = ""
    async for chunk in texts:
        buffer += chunk
        cut = max(buffer.rfind(" "), buffer.rfind("\n"), buffer.rfind("\t"))
        if cut < 0:
            continue
        piece, buffer = buffer[:cut].strip(), buffer[cut + 1 :]
        if piece:
            yield " ".join(piece.split()) + " ", bool(_SENTENCE_END.search(piece))
    if buffer.strip():
        yield " ".join(buffer.split()) + " ", True


async def stream_websocket(
    texts: AsyncIterable[str], config: ElevenLabsConfig
) -> AsyncIterator[bytes]:
    """Speak text that arrives in pieces over one ``stream-input`` socket.

    Text is sent from a task as it arrives while audio is yielded as it comes back, so the
    first sentence is heard before the reply is complete. Closing this generator (barge-in)
    stops the sender and closes the socket at once.

    Raises:
        ProviderAuthError: handshake 401/403, or an ``invalid_api_key`` error message.
        ProviderError: other handshake statuses or vendor error messages (``status`` is the
            HTTP status or close code).
        ProviderConnectionError: unreachable, or the socket closed before the end of audio.
        Exception: whatever iterating ``texts`` raised, unchanged.
    """
    ws = await _open(config)
    sender = asyncio.create_task(_send_all(ws, texts, config), name="elevenlabs-ws-sender")
    received = 0
    error_payload: dict[str, Any] | None = None
    closed: websockets.ConnectionClosed | None = None
    finished = False
    try:
        while True:
            try:
                raw = await ws.recv()
            except websockets.ConnectionClosed as exc:
                closed = exc
                break
            data = _parse(raw)
            if data.get("audio"):
                chunk = _audio(data)
                received += len(chunk)
                if chunk:
                    yield chunk
            elif FinalOutput.model_validate(data).is_final and sender.done():
                break
            elif "error" in data or "message" in data:
                error_payload = data
        # The socket is closed: a sender still running is failing or waiting for text.
        await asyncio.wait({sender}, timeout=CLOSE_TIMEOUT_S)
        if sender.done() and not sender.cancelled() and (exc := sender.exception()) is not None:
            raise exc
        code = closed.rcvd.code if closed is not None and closed.rcvd else None
        if error_payload is not None:
            raise message_error(error_payload, code) from closed
        if isinstance(closed, websockets.ConnectionClosedError):
            raise dropped(received, f"socket closed ({closed})", status=code) from closed
        if not sender.done():
            raise dropped(received, "the vendor closed the socket before the text was all sent")
        finished = True
    finally:
        sender.cancel()
        await asyncio.wait({sender})
        if not sender.cancelled():
            sender.exception()  # retrieved (and reported above when it mattered)
        if finished:
            await ws.close()
        else:
            await _abort(ws)


async def _abort(ws: ClientConnection) -> None:
    """Drop the connection now, without waiting for the vendor's close frame: barge-in and
    failures must not linger on a close handshake."""
    if ws.transport is not None:
        ws.transport.abort()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await ws.wait_closed()


async def _open(config: ElevenLabsConfig) -> ClientConnection:
    url = config.stream_input_url
    headers = {"xi-api-key": config.api_key, "User-Agent": f"elevenlabs/{sdk_version}"}
    try:
        return await connect(
            url,
            additional_headers=headers,
            open_timeout=config.timeout,
            close_timeout=CLOSE_TIMEOUT_S,
            max_size=None,
        )
    except websockets.InvalidStatus as exc:
        response = exc.response
        raise status_error(response.status_code, _parse(response.body or b"")) from exc
    except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
        raise ProviderConnectionError(PROVIDER_ID, f"cannot open stream-input: {exc}") from exc


async def _send_all(
    ws: ClientConnection, texts: AsyncIterable[str], config: ElevenLabsConfig
) -> None:
    """Initialize, send each piece as it arrives, then the end-of-input message. A failure
    of ``texts`` (or a send timing out) drops the socket, so the receiver wakes, and is
    re-raised for it to report."""
    options: dict[str, Any] = {}
    if voice_settings := config.voice_settings.to_request():
        options["voice_settings"] = RealtimeVoiceSettings(**voice_settings)
    init = InitializeConnection(
        generation_config=GenerationConfig(
            chunk_length_schedule=list(config.chunk_length_schedule)
        ),
        **options,
    )
    try:
        await _send(ws, init.json(), config)
        async for piece, ends_sentence in word_pieces(texts):
            message = SendText(text=piece, flush=True) if ends_sentence else SendText(text=piece)
            await _send(ws, message.json(), config)
        await _send(ws, CloseConnection().json(), config)
    except websockets.ConnectionClosed:
        return  # the receiver reports why the socket closed
    except BaseException:
        await _abort(ws)
        raise


async def _send(ws: ClientConnection, message: str, config: ElevenLabsConfig) -> None:
    """One text frame, bounded by the configured timeout (a half-closed socket must not
    stall the call)."""
    try:
        async with asyncio.timeout(config.timeout):
            await ws.send(message)
    except TimeoutError as exc:
        raise ProviderError(
            PROVIDER_ID, "sending text to stream-input timed out", code="timeout"
        ) from exc


def _audio(data: dict[str, Any]) -> bytes:
    """The μ-law bytes of an ``AudioOutput`` message.

    Raises:
        ProviderError: the ``audio`` field is not valid base64.
    """
    try:
        return base64.b64decode(AudioOutput.model_validate(data).audio, validate=True)
    except ValueError as exc:
        raise ProviderError(
            PROVIDER_ID, f"undecodable audio message: {exc}", code="bad_audio"
        ) from exc


def _parse(raw: str | bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        return {"message": text[:300]} if text else {}
    return data if isinstance(data, dict) else {}
