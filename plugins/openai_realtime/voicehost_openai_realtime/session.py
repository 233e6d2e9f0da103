"""One call's OpenAI Realtime speech-to-speech session on the ``openai`` SDK.

Protocol (OpenAI Realtime API, GA; wire-protocols.md §3.2): ``GET /v1/realtime?model=…
&temperature=…`` with ``Authorization: Bearer <key>``; the client sends ``session.update``
(conversation shape, ``audio/pcmu`` both ways, ``semantic_vad``, the tools) and waits for
``session.updated``, whose *acknowledged* session is checked (formats, turn detection, tool
names): a μ-law setting that silently did not apply would play noise to the caller. Then the
conversation so far is restored (``conversation.item.create`` per turn) and, on a new call,
the greeting asked for (``response.create``). Caller audio goes as base64
``input_audio_buffer.append`` events, sent by one task so :meth:`send_audio` never waits.

The SDK's own reconnection is off (``max_retries=0``): after a drop the host opens a new
session with the conversation restored, and :meth:`events` raises.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final

from voicehost import (
    ConversationEvent,
    ConversationRequest,
    ConversationSession,
    ProviderConnectionError,
    ProviderError,
    stream_dropped,
    upgrade_error,
)
from voicehost_openai_realtime.config import AUDIO_FORMAT_TYPE, WHERE, OpenAIRealtimeConfig
from voicehost_openai_realtime.events import (
    PROVIDER_ID,
    EventMapper,
    history_items,
    vendor_error,
)

if TYPE_CHECKING:  # the SDK is imported by the provider, when it builds the first client
    from openai import AsyncOpenAI
    from openai.resources.realtime.realtime import AsyncRealtimeConnection

#: μ-law per ``input_audio_buffer.append`` at most (400 ms: a backlog goes in few events).
MAX_SEND_BYTES: Final = 3200
#: Caller audio kept while the socket is slow (10 s of μ-law); older audio is dropped.
MAX_PENDING_BYTES: Final = 80_000
#: Bound of the close handshake, s.
CLOSE_TIMEOUT_S: Final = 2.0


class OpenAIRealtimeSession(ConversationSession):
    """A speech-to-speech conversation with an OpenAI Realtime model, for one call.

    Args:
        request: the call's request; ``request.config`` is an
            :class:`~voicehost_openai_realtime.config.OpenAIRealtimeConfig`.
        client: the SDK client to open the realtime socket on (shared by calls).

    Events (:meth:`events`): ``response.output_audio.delta`` → :class:`~voicehost.AudioOut`
    (μ-law bytes); ``input_audio_buffer.speech_started``/``stopped`` →
    :class:`~voicehost.CallerSpeechStarted`/:class:`~voicehost.CallerSpeechStopped`;
    ``…input_audio_transcription.completed`` → :class:`~voicehost.CallerTranscript`;
    ``response.output_audio_transcript.done`` → :class:`~voicehost.BotTranscript`;
    ``response.done`` → :class:`~voicehost.ToolCall` per function call, then
    :class:`~voicehost.ResponseDone`; ``error`` → :class:`~voicehost.ConversationError`, or
    :class:`~voicehost.SessionExpiring` for ``session_expired``.
    """

    def __init__(self, request: ConversationRequest, client: AsyncOpenAI) -> None:
        if not isinstance(request.config, OpenAIRealtimeConfig):
            raise TypeError("request.config must be an OpenAIRealtimeConfig")
        self.request = request
        self.config: OpenAIRealtimeConfig = request.config
        #: The ``session`` object of the ``session.updated`` answer (the effective config).
        self.acknowledged: dict[str, Any] | None = None
        #: Caller audio bytes handed to the socket.
        self.sent_bytes = 0
        self._client = client
        self._conn: AsyncRealtimeConnection | None = None
        self._connected = False
        self._closed = False
        self._mapper = EventMapper()
        self._pending: collections.deque[bytes] = collections.deque()
        self._pending_bytes = 0
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """True while the socket is open and the session configured."""
        return self._connected

    # --- set-up ----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the socket, configure the session and check the acknowledgement, restore the
        history, ask for the greeting.

        Raises:
            ProviderAuthError: the upgrade was refused with 401/403.
            ProviderError: another refused upgrade, an ``error`` answering the
                ``session.update``, or (code ``session_config_mismatch``) a
                ``session.updated`` that did not apply the formats, turn detection or tools.
            ProviderConnectionError: the vendor could not be reached, or did not answer
                within ``connect_timeout_s``.
        """
        if self._closed:
            raise ProviderError(PROVIDER_ID, "the session is closed", code="closed")
        if self._conn is not None:
            return
        config = self.config
        manager = self._client.realtime.connect(
            model=config.model, extra_query=config.connect_query, max_retries=0
        )
        try:
            async with asyncio.timeout(config.connect_timeout_s):
                conn = await manager.enter()
        except TimeoutError as exc:
            raise ProviderConnectionError(
                PROVIDER_ID, "no answer to the WebSocket upgrade", code="timeout"
            ) from exc
        except Exception as exc:
            refused = upgrade_error(PROVIDER_ID, exc, where=f"{WHERE} api_key (OPENAI_API_KEY)")
            if refused is not None:
                raise refused from exc
            raise ProviderConnectionError(
                PROVIDER_ID, f"could not connect: {exc}", code="connect_failed"
            ) from exc
        self._conn = conn
        try:
            await self._configure(conn)
        except BaseException:
            await self._discard()
            raise
        self._connected = True
        self._sender = asyncio.create_task(self._send_loop(conn), name="openai-realtime-send")

    async def _configure(self, conn: AsyncRealtimeConnection) -> None:
        request = self.request
        session = self.config.session(request.instructions, request.tools)
        try:
            await conn.send_raw(json.dumps({"type": "session.update", "session": session}))
            async with asyncio.timeout(self.config.connect_timeout_s):
                while True:
                    event = json.loads(await conn.recv_bytes())
                    if event.get("type") == "session.updated":
                        self._check_acknowledged(event.get("session"))
                        break
                    if event.get("type") == "error":
                        raise vendor_error(event, "session.update refused")
            for item in history_items(request.context.history):
                await conn.send_raw(json.dumps(item))
            if request.greet and self.config.greeting:
                await conn.send_raw(json.dumps(_greeting(self.config.greeting)))
        except ProviderError:
            raise
        except TimeoutError as exc:
            raise ProviderConnectionError(
                PROVIDER_ID, "no session.updated answer", code="timeout"
            ) from exc
        except Exception as exc:
            raise ProviderConnectionError(
                PROVIDER_ID, f"the socket failed during set-up: {exc}", code="connect_failed"
            ) from exc

    def _check_acknowledged(self, session: Any) -> None:
        """Compare the effective session with the request.

        Raises:
            ProviderError: (code ``session_config_mismatch``) another session type, audio
                format, turn detection or tool set than requested.
        """
        session = session if isinstance(session, dict) else {}
        self.acknowledged = session
        audio = _dict(session.get("audio"))
        audio_in, audio_out = _dict(audio.get("input")), _dict(audio.get("output"))
        fmt_in = _dict(audio_in.get("format")).get("type")
        fmt_out = _dict(audio_out.get("format")).get("type")
        turn = _dict(audio_in.get("turn_detection")).get("type")
        tools = [t.get("name") for t in session.get("tools") or [] if isinstance(t, dict)]
        wanted_tools = [spec.name for spec in self.request.tools]
        problems = []
        if session.get("type", "realtime") != "realtime":
            problems.append(f"session type {session.get('type')!r}, not 'realtime'")
        if fmt_in != AUDIO_FORMAT_TYPE:
            problems.append(f"input format {fmt_in!r}, not {AUDIO_FORMAT_TYPE!r}")
        if fmt_out != AUDIO_FORMAT_TYPE:
            problems.append(f"output format {fmt_out!r}, not {AUDIO_FORMAT_TYPE!r}")
        if turn != "semantic_vad":
            problems.append(f"turn detection {turn!r}, not 'semantic_vad'")
        if sorted(tools) != sorted(wanted_tools):
            problems.append(f"tools {sorted(tools)}, not {sorted(wanted_tools)}")
        if problems:
            raise ProviderError(
                PROVIDER_ID,
                "session.updated did not apply the requested config: " + "; ".join(problems),
                code="session_config_mismatch",
            )

    # --- caller audio ----------------------------------------------------------------------

    def send_audio(self, audio: bytes) -> None:
        """Queue caller μ-law for the sender task. Never blocks, never raises; discarded
        before :meth:`connect`, after :meth:`close` or a drop. While the socket is slow at
        most 10 s are kept (the oldest audio goes first)."""
        if not self._connected or not audio:
            return
        self._pending.append(bytes(audio))
        self._pending_bytes += len(audio)
        while self._pending_bytes > MAX_PENDING_BYTES and len(self._pending) > 1:
            self._pending_bytes -= len(self._pending.popleft())
        self._wake.set()

    async def _send_loop(self, conn: AsyncRealtimeConnection) -> None:
        """Send queued audio as ``input_audio_buffer.append`` events, in order, coalescing a
        backlog up to :data:`MAX_SEND_BYTES` per event. Sent with ``send_raw`` (the event is
        already in wire form; the typed helper's parameter transform is the expensive part)."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._pending:
                    chunk = bytearray(self._pending.popleft())
                    while self._pending and len(chunk) + len(self._pending[0]) <= MAX_SEND_BYTES:
                        chunk += self._pending.popleft()
                    self._pending_bytes -= len(chunk)
                    payload = base64.b64encode(chunk).decode("ascii")
                    await conn.send_raw(
                        '{"type":"input_audio_buffer.append","audio":"' + payload + '"}'
                    )
                    self.sent_bytes += len(chunk)
        except asyncio.CancelledError:
            raise
        except Exception:  # the socket dropped: events() reports it
            self._lost()

    def _lost(self) -> None:
        self._connected = False
        self._pending.clear()
        self._pending_bytes = 0

    # --- events ----------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[ConversationEvent]:
        """The session's events in the vendor's order; ends after :meth:`close`, and after
        the vendor closes a session it reported as expired (:class:`~voicehost.SessionExpiring`).

        Raises (while iterating):
            ProviderConnectionError: (code ``stream_dropped``) the socket ended otherwise.
        """
        conn = self._conn
        if conn is None:
            return
        while not self._closed:
            try:
                raw = await conn.recv_bytes()
            except Exception as exc:
                self._lost()
                if self._closed or self._mapper.expired:
                    return
                rcvd = getattr(exc, "rcvd", None)
                code = getattr(rcvd, "code", None)
                raise stream_dropped(
                    PROVIDER_ID, self.sent_bytes, f"the socket closed: {exc}", status=code
                ) from exc
            for event in self._mapper.map(raw):
                yield event

    # --- control ---------------------------------------------------------------------------

    async def send_tool_result(self, call_id: str, output: str, *, respond: bool) -> None:
        """``conversation.item.create`` of a ``function_call_output``; with ``respond`` a
        ``response.create`` after it. Does nothing once closed or dropped."""
        item = {"type": "function_call_output", "call_id": call_id, "output": output}
        await self._send({"type": "conversation.item.create", "item": item})
        if respond:
            await self._send({"type": "response.create"})

    async def truncate(self, item_id: str, audio_end_ms: int) -> None:
        """``conversation.item.truncate`` of ``item_id``'s audio at ``audio_end_ms`` (content
        index 0). Does nothing once closed or dropped."""
        await self._send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": max(0, int(audio_end_ms)),
            }
        )

    async def say(self, instructions: str) -> None:
        """``response.create`` with ``instructions`` for this response. Does nothing once
        closed or dropped."""
        await self._send({"type": "response.create", "response": {"instructions": instructions}})

    async def _send(self, event: dict[str, Any]) -> None:
        conn = self._conn
        if conn is None or not self._connected:
            return
        try:
            await conn.send_raw(json.dumps(event))
        except Exception:  # the socket dropped: events() reports it
            self._lost()

    async def close(self) -> None:
        """Stop the sender and close the socket (bounded by 2 s). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._lost()
        await self._discard()

    async def _discard(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
        conn, self._conn = self._conn, None
        self._connected = False
        if conn is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await conn.close()


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _greeting(greeting: str) -> dict[str, Any]:
    """The ``response.create`` that has the model say ``greeting`` (no fake caller message
    is added to the conversation)."""
    instructions = (
        "Begin the call now by saying exactly the following greeting, word for word, and "
        f"nothing else:\n{greeting}"
    )
    return {"type": "response.create", "response": {"instructions": instructions}}
