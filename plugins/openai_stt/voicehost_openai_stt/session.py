"""One call's OpenAI Realtime transcription session on the ``openai`` SDK.

Protocol (OpenAI Realtime API, GA; wire-protocols.md §2): ``GET /v1/realtime?intent=transcription``
with ``Authorization: Bearer <key>``; the client sends ``session.update`` (transcription shape,
input ``audio/pcmu``) and waits for ``session.updated``, then streams
``input_audio_buffer.append`` events (base64 μ-law). The server's VAD decides turns and sends
``input_audio_buffer.speech_started``, ``…transcription.delta`` and ``…transcription.completed``
per utterance (item).

The acknowledged configuration is checked, not only what was sent: a μ-law setting that silently
did not apply leaves a VAD that never fires (Twilio sample #6), so a ``session.updated`` whose
input format or turn detection differs from the request fails the session set-up.

On close, an utterance still in progress is committed (``input_audio_buffer.commit``, the
analogue of Deepgram's ``Finalize``) and the transcripts of committed utterances are awaited,
within the close timeout, so the caller's last words are not lost.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import TYPE_CHECKING, Any

from voicehost import (
    ProviderAuthError,
    ProviderError,
    StreamingTranscriptionSession,
    TranscriptionRequest,
    upgrade_error,
)
from voicehost_openai_stt.config import INPUT_FORMAT_TYPE, WHERE, OpenAISTTConfig

if TYPE_CHECKING:  # the SDK is imported by the provider, when it builds the first client
    from openai import AsyncOpenAI
    from openai.resources.realtime.realtime import AsyncRealtimeConnection

PROVIDER_ID = "openai"
#: The server's answer to a ``commit`` of an empty (already committed) buffer.
COMMIT_EMPTY = "input_audio_buffer_commit_empty"
#: Vendor error codes that mean the key is wrong, whatever the transport said.
AUTH_ERROR_CODES = frozenset({"invalid_api_key", "unauthorized", "authentication_error"})


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else {}


def _vendor_error(event: Any, what: str) -> ProviderError:
    error = _as_dict(getattr(event, "error", None))
    code = error.get("code") or error.get("type")
    message = error.get("message") or "no message"
    cls = ProviderAuthError if code in AUTH_ERROR_CODES else ProviderError
    hint = f"; check {WHERE} api_key" if cls is ProviderAuthError else ""
    return cls(PROVIDER_ID, f"{what}: {message}{hint}", code=code)


class OpenAITranscriptionSession(StreamingTranscriptionSession[OpenAISTTConfig]):
    """Realtime transcription of one call (input ``audio/pcmu``, so μ-law passes through).

    Args:
        request: the call's request; ``request.config`` is normally ``config``.
        config: the parsed ``[stt.openai]`` table.
        client: the SDK client to open the realtime socket on (shared by calls).

    Callbacks: ``input_audio_buffer.speech_started`` → ``on_speech_start``; each
    ``…transcription.delta`` → ``on_partial`` with the item's text so far; ``…completed`` →
    ``on_transcript``; ``…failed`` and ``error`` events → ``on_error`` with a
    :class:`~voicehost.errors.ProviderError` carrying the vendor's ``code`` and message.
    """

    provider_id = PROVIDER_ID
    #: 400 ms of μ-law per ``input_audio_buffer.append`` at most (a backlog after a reconnect).
    max_send_bytes = 3200

    def __init__(
        self, request: TranscriptionRequest, config: OpenAISTTConfig, client: AsyncOpenAI
    ) -> None:
        super().__init__(request, config)
        #: The ``session`` object of the last ``session.updated`` (the effective config).
        self.acknowledged: dict[str, Any] | None = None
        self._client = client
        self._conn: AsyncRealtimeConnection | None = None
        self._items: dict[str, str] = {}
        self._speaking = False  # speech_started seen, not yet committed
        self._outstanding: set[str] = set()  # committed items not yet completed or failed
        self._idle = asyncio.Event()
        self._idle.set()

    async def _open(self) -> None:
        self._items.clear()  # items of a dropped socket never complete
        self._outstanding.clear()
        self._speaking = False
        self._update_idle()
        manager = self._client.realtime.connect(extra_query={"intent": "transcription"})
        try:
            self._conn = conn = await manager.enter()
        except Exception as exc:
            refused = upgrade_error(PROVIDER_ID, exc, where=f"{WHERE} api_key (OPENAI_API_KEY)")
            if refused is not None:
                raise refused from exc
            raise
        await self._bounded_send(conn.session.update(session=self.config.session()), "session")
        while True:
            event = await conn.recv()
            if event.type == "session.updated":
                self._check_acknowledged(_as_dict(getattr(event, "session", None)))
                return
            if event.type == "error":
                raise _vendor_error(event, "session.update refused")

    def _check_acknowledged(self, session: dict[str, Any]) -> None:
        """Compare the effective config with the request.

        Raises:
            ProviderError: (code ``session_config_mismatch``) the vendor runs another session
                type, input format or turn detection than requested.
        """
        self.acknowledged = session
        audio_in = _as_dict(_as_dict(session.get("audio")).get("input"))
        fmt = _as_dict(audio_in.get("format")).get("type")
        turn = _as_dict(audio_in.get("turn_detection")).get("type")
        wanted_turn = self.config.turn_detection.type
        problems = []
        if session.get("type", "transcription") != "transcription":
            problems.append(f"session type {session.get('type')!r}, not 'transcription'")
        if fmt != INPUT_FORMAT_TYPE:
            problems.append(f"input format {fmt!r}, not {INPUT_FORMAT_TYPE!r}")
        if turn != wanted_turn:
            problems.append(f"turn detection {turn!r}, not {wanted_turn!r}")
        if problems:
            raise ProviderError(
                PROVIDER_ID,
                "session.updated did not apply the requested config: " + "; ".join(problems),
                code="session_config_mismatch",
            )

    async def _send_audio(self, audio: bytes) -> None:
        """``input_audio_buffer.append`` with the μ-law base64-encoded.

        Sent with the connection's ``send_raw`` (the same socket and send queue as
        ``conn.input_audio_buffer.append``): the event is already in wire form, and the typed
        helper's parameter transform costs ~75 % of the plugin's CPU at 50 frames a second.
        """
        assert self._conn is not None
        payload = base64.b64encode(audio).decode("ascii")
        await self._conn.send_raw(
            json.dumps({"type": "input_audio_buffer.append", "audio": payload})
        )

    async def _receive(self) -> None:
        assert self._conn is not None
        async for event in self._conn:
            self._dispatch(event)

    def _dispatch(self, event: Any) -> None:
        kind = event.type
        if kind == "input_audio_buffer.speech_started":
            self._speaking = True
            self._update_idle()
            self._emit_speech_start()
        elif kind == "input_audio_buffer.committed":
            self._speaking = False
            self._outstanding.add(event.item_id)
            self._update_idle()
        elif kind == "conversation.item.input_audio_transcription.delta":
            text = self._items.get(event.item_id, "") + (event.delta or "")
            self._items[event.item_id] = text
            if text.strip():
                self._emit_partial(text.strip())
        elif kind == "conversation.item.input_audio_transcription.completed":
            self._item_done(event.item_id)
            text = (event.transcript or "").strip()
            if text:
                self._emit_transcript(text)
        elif kind == "conversation.item.input_audio_transcription.failed":
            self._item_done(event.item_id)
            self._emit_error(_vendor_error(event, "transcription failed"))
        elif kind == "error":
            error = _vendor_error(event, "error")
            if self.state == "closing" and error.code == COMMIT_EMPTY:
                return  # our closing commit raced the server's own: nothing was lost
            self._emit_error(error)

    def _item_done(self, item_id: str) -> None:
        self._items.pop(item_id, None)
        self._outstanding.discard(item_id)
        self._update_idle()

    def _update_idle(self) -> None:
        if self._speaking or self._outstanding:
            self._idle.clear()
        else:
            self._idle.set()

    async def _finish(self) -> None:
        """The caller's last words: when an utterance is in progress, ``commit`` it (as
        Deepgram's ``Finalize``), then wait, within the close timeout, for the transcripts of
        every committed utterance."""
        assert self._conn is not None
        if self._speaking:
            await self._bounded_send(self._conn.input_audio_buffer.commit(), "commit")
        await self._wait_receiver(until=self._idle)

    async def _discard_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
