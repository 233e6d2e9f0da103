"""Server events of the OpenAI Realtime API (GA, wire-protocols.md §3.2) → the contract's
conversation events, and the client events the session sends.

Server events are read as raw JSON (``recv_bytes`` + ``json.loads``), not as the SDK's
models: an audio delta arrives every 20-100 ms per call, and building a pydantic model per
event is most of the plugin's CPU.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from typing import Any, Final

from voicehost import (
    AudioOut,
    BotTranscript,
    CallerSpeechStarted,
    CallerSpeechStopped,
    CallerTranscript,
    ConversationError,
    ConversationEvent,
    ConversationTurn,
    ProviderAuthError,
    ProviderError,
    ResponseDone,
    SessionExpiring,
    ToolCall,
)

__all__ = [
    "AUTH_ERROR_CODES",
    "PROVIDER_ID",
    "SESSION_EXPIRED",
    "EventMapper",
    "history_items",
    "vendor_error",
]

PROVIDER_ID: Final = "openai-realtime"
#: The ``error`` code of a session that reached the vendor's maximum length ("Your session hit
#: the maximum duration of … minutes").
SESSION_EXPIRED: Final = "session_expired"
#: Vendor error codes that mean the key is wrong, whatever the transport said.
AUTH_ERROR_CODES: Final = frozenset({"invalid_api_key", "unauthorized", "authentication_error"})


def vendor_error(event: dict[str, Any], what: str) -> ProviderError:
    """The :class:`~voicehost.ProviderError` of an ``error`` event (or an event with an
    ``error`` object, e.g. ``…transcription.failed``), carrying the vendor's ``code``;
    a :class:`~voicehost.ProviderAuthError` for a credentials code."""
    error = event.get("error")
    error = error if isinstance(error, dict) else {}
    code = error.get("code") or error.get("type")
    message = error.get("message") or "no message"
    cls = ProviderAuthError if code in AUTH_ERROR_CODES else ProviderError
    return cls(PROVIDER_ID, f"{what}: {message}", code=code)


def history_items(history: list[ConversationTurn]) -> Iterator[dict[str, Any]]:
    """``conversation.item.create`` events restoring ``history`` (oldest first).

    Speech turns become messages (the caller's ``input_text``, the bot's ``output_text``);
    key presses become text (``[pressed keys 5]``); a tool turn becomes its
    ``function_call`` and ``function_call_output`` items (a call id is made up when the turn
    has none).
    """
    for index, turn in enumerate(history):
        if turn.kind == "tool" and turn.tool is not None:
            call_id = turn.tool.call_id or f"call_restored_{index}"
            yield _create(
                {
                    "type": "function_call",
                    "call_id": call_id,
                    "name": turn.tool.name,
                    "arguments": turn.tool.arguments or "{}",
                }
            )
            output = {"type": "function_call_output", "call_id": call_id}
            yield _create({**output, "output": turn.tool.result or "{}"})
            continue
        text = turn.text if turn.kind == "speech" else f"[pressed keys {turn.text}]"
        if not text.strip():
            continue
        if turn.role == "caller":
            content = {"type": "input_text", "text": text}
            yield _create({"type": "message", "role": "user", "content": [content]})
        else:
            content = {"type": "output_text", "text": text}
            yield _create({"type": "message", "role": "assistant", "content": [content]})


def _create(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "conversation.item.create", "item": item}


class EventMapper:
    """Turns one connection's server events into conversation events, keeping what spans
    events (the caller's transcription deltas per item; whether the session expired)."""

    def __init__(self) -> None:
        self._caller_text: dict[str, str] = {}
        #: An ``error`` with :data:`SESSION_EXPIRED` was seen: the vendor ends the session.
        self.expired = False

    def map(self, raw: bytes | str) -> list[ConversationEvent]:
        """The conversation events of one server event (JSON text), maybe none.

        ``response.done`` yields one :class:`~voicehost.ToolCall` per ``function_call`` item
        of its output, then :class:`~voicehost.ResponseDone` (the seed's way:
        ``…function_call_arguments.done`` is ignored, so a call never fires twice).
        """
        try:
            event = json.loads(raw)
        except ValueError:
            error = ProviderError(PROVIDER_ID, "a server event is not JSON", code="invalid_json")
            return [ConversationError(error)]
        if not isinstance(event, dict):
            return []
        kind = event.get("type")
        if kind == "response.output_audio.delta":
            try:
                audio = base64.b64decode(event.get("delta") or "")
            except (binascii.Error, ValueError):
                bad = ProviderError(PROVIDER_ID, "audio delta is not base64", code="invalid_audio")
                return [ConversationError(bad)]
            if not audio:
                return []
            item_id = event.get("item_id") or ""
            return [AudioOut(audio, item_id, event.get("response_id") or "")]
        if kind == "input_audio_buffer.speech_started":
            return [CallerSpeechStarted()]
        if kind == "input_audio_buffer.speech_stopped":
            return [CallerSpeechStopped()]
        if kind == "conversation.item.input_audio_transcription.delta":
            item_id = event.get("item_id") or ""
            self._caller_text[item_id] = self._caller_text.get(item_id, "") + (
                event.get("delta") or ""
            )
            return []
        if kind == "conversation.item.input_audio_transcription.completed":
            item_id = event.get("item_id") or ""
            deltas = self._caller_text.pop(item_id, "")
            text = (event.get("transcript") or "").strip() or deltas.strip()
            return [CallerTranscript(text, item_id)] if text else []
        if kind == "conversation.item.input_audio_transcription.failed":
            self._caller_text.pop(event.get("item_id") or "", None)
            return [ConversationError(vendor_error(event, "caller transcription failed"))]
        if kind == "response.output_audio_transcript.done":
            text = event.get("transcript") or ""
            item_id = event.get("item_id") or ""
            return [BotTranscript(text, item_id, event.get("response_id") or "")]
        if kind == "response.done":
            return self._response_done(event.get("response"))
        if kind == "error":
            error = vendor_error(event, "vendor error")
            if error.code == SESSION_EXPIRED:
                self.expired = True
                return [SessionExpiring()]
            return [ConversationError(error)]
        return []

    @staticmethod
    def _response_done(response: Any) -> list[ConversationEvent]:
        response = response if isinstance(response, dict) else {}
        out: list[ConversationEvent] = []
        for item in response.get("output") or []:
            if isinstance(item, dict) and item.get("type") == "function_call":
                out.append(
                    ToolCall(
                        call_id=item.get("call_id") or "",
                        name=item.get("name") or "",
                        arguments=item.get("arguments") or "{}",
                    )
                )
        out.append(ResponseDone(response.get("id") or "", response.get("status") or "completed"))
        return out
