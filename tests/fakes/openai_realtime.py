"""A fake OpenAI Realtime API for transcription sessions (wire-protocols.md §2).

Checks what the official ``openai`` SDK sends, as OpenAI documents the GA API:

- ``GET /v1/realtime?intent=transcription`` (a ``model`` query makes a conversation session,
  which refuses a transcription update) with ``Authorization: Bearer <key>`` → else HTTP 401;
- JSON text frames only (a binary frame is a violation and gets an ``error`` event);
- ``session.update`` with ``session.type = "transcription"`` and the config under
  ``session.audio.input`` (flat beta fields → ``unknown_parameter``; no type →
  ``missing_required_parameter``), answered by ``session.updated`` echoing the effective
  session (the defaults merged with the update);
- ``input_audio_buffer.append`` with base64 audio, only after the ``session.update``; the
  audio is recorded, and recognised only when the format is ``audio/pcmu`` (μ-law).

Per utterance it sends, in the documented order, ``input_audio_buffer.speech_started`` →
``speech_stopped`` → ``committed`` → ``conversation.item.added`` → one
``conversation.item.input_audio_transcription.delta`` per word → ``…completed`` (or
``…failed`` when :attr:`FakeOpenAIRealtime.fail_transcriptions` is set). Server VAD's
``silence_duration_ms`` from the session ends an utterance.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import itertools
import json
from typing import Any

from fakes.stt_audio import Heard, Recogniser
from fakes.stt_ws import Connection, FakeSTTServer

DEFAULT_SESSION: dict[str, Any] = {
    "type": "transcription",
    "object": "realtime.transcription_session",
    "audio": {
        "input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": None,
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 200,
            },
            "noise_reduction": None,
        }
    },
}
FORMATS = frozenset({"audio/pcm", "audio/pcmu", "audio/pcma"})
FLAT_BETA_FIELDS = frozenset(
    {
        "input_audio_format",
        "input_audio_transcription",
        "input_audio_noise_reduction",
        "turn_detection",
    }
)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` laid over ``base``; objects with a ``type`` (format, turn_detection …) are
    one-of unions and replace, other objects merge."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and "type" not in value:
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class FakeOpenAIRealtime(FakeSTTServer):
    """Fake ``wss://api.openai.com/v1/realtime?intent=transcription``.

    Scripting (set before or during a test):
        ack_override: merged into the ``session`` of ``session.updated`` (e.g.
            ``{"audio": {"input": {"format": {"type": "audio/pcm"}}}}`` to simulate a μ-law
            setting that silently did not apply).
        refuse_session_update: answer ``session.update`` with this ``error`` code instead.
        fail_transcriptions: answer utterances with ``…transcription.failed``.
        transcription_delay_s: wait this long after ``committed`` before the transcription
            events (the fake keeps reading meanwhile), as a real model takes time.

    The SDK's ``base_url`` for this fake is :attr:`base_url` (``…/v1``); the WebSocket URL is
    derived from it (http→ws).
    """

    def __init__(self, api_key: str = "sk-test") -> None:
        super().__init__(api_key, auth_scheme="Bearer", path="/v1/realtime")
        self.ack_override: dict[str, Any] | None = None
        self.refuse_session_update: str | None = None
        self.fail_transcriptions = False
        self.transcription_delay_s = 0.0
        self.committed = 0
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url`` to ``openai.AsyncOpenAI``."""
        return f"{self.origin}/v1"

    def check_request(self, conn_path: str, query: dict[str, list[str]]) -> str | None:
        if query.get("intent") != ["transcription"]:
            return "transcription sessions need ?intent=transcription"
        return None

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):04d}"

    async def send_error(self, code: str, message: str, conn: Connection | None = None) -> None:
        """Send an ``error`` event (non-fatal: the session stays open)."""
        await (conn or self.current).send_json(self._error(code, message))

    def _error(self, code: str, message: str, type_: str = "invalid_request_error") -> dict:
        return {
            "type": "error",
            "event_id": self._id("event"),
            "error": {"type": type_, "code": code, "message": message, "param": None},
        }

    async def serve(self, conn: Connection) -> None:
        session = copy.deepcopy(DEFAULT_SESSION)
        configured = False
        await conn.send_json(
            {"type": "session.created", "event_id": self._id("event"), "session": session}
        )
        async for raw in conn.ws:
            if isinstance(raw, bytes):
                conn.messages.append(("binary", len(raw)))
                conn.violations.append("binary frame (OpenAI takes JSON text frames)")
                await conn.send_json(self._error("invalid_frame", "binary frames not supported"))
                await self.notify()
                continue
            try:
                event = json.loads(raw)
            except ValueError:
                conn.messages.append(("text", raw))
                conn.violations.append("text frame is not JSON")
                await conn.send_json(self._error("invalid_json", "not JSON"))
                await self.notify()
                continue
            kind = event.get("type") if isinstance(event, dict) else None
            if kind == "input_audio_buffer.append":
                # Record the event without its (large) payload; the bytes go to conn.audio.
                conn.messages.append(("text", {"type": kind}))
                if not configured:
                    conn.violations.append("audio appended before session.update")
                try:
                    audio = base64.b64decode(event.get("audio", ""), validate=True)
                except (binascii.Error, ValueError):
                    conn.violations.append("append with invalid base64")
                    await conn.send_json(self._error("invalid_base64", "audio is not base64"))
                    continue
                await self.received_audio(conn, audio)
                fmt = session["audio"]["input"]["format"].get("type")
                if fmt == "audio/pcmu":
                    for heard in conn.recogniser.feed(audio):
                        await self._heard(conn, heard)
                continue
            conn.messages.append(("text", event))
            if kind == "session.update":
                update = event.get("session")
                problem = self._check_update(update)
                if problem is None and self.refuse_session_update:
                    problem = (self.refuse_session_update, "refused by the test")
                if problem is not None:
                    await conn.send_json(self._error(*problem))
                else:
                    assert isinstance(update, dict)
                    session = _merge(session, update)
                    configured = True
                    silence = (session["audio"]["input"].get("turn_detection") or {}).get(
                        "silence_duration_ms", 500
                    )
                    conn.recogniser.end_silence_ms = int(silence)
                    conn.recogniser.partial_every_ms = None  # deltas come after the commit
                    ack = _merge(session, self.ack_override) if self.ack_override else session
                    await conn.send_json(
                        {"type": "session.updated", "event_id": self._id("event"), "session": ack}
                    )
            elif kind == "input_audio_buffer.commit":
                flushed = conn.recogniser.flush()
                if not flushed:
                    await conn.send_json(
                        self._error(
                            "input_audio_buffer_commit_empty",
                            "buffer too small: expected at least 100ms of audio",
                        )
                    )
                for heard in flushed:
                    await self._heard(conn, heard)
            elif kind == "input_audio_buffer.clear":
                conn.recogniser = Recogniser(self.utterances)
                await conn.send_json(
                    {"type": "input_audio_buffer.cleared", "event_id": self._id("event")}
                )
            else:
                conn.violations.append(f"unexpected event {kind!r}")
                await conn.send_json(self._error("unknown_event", f"unknown event {kind!r}"))
            await self.notify()

    @staticmethod
    def _check_update(update: Any) -> tuple[str, str] | None:
        if not isinstance(update, dict):
            return ("invalid_value", "session must be an object")
        flat = FLAT_BETA_FIELDS & update.keys()
        if flat:
            return ("unknown_parameter", f"unknown parameter session.{sorted(flat)[0]}")
        if "type" not in update:
            return ("missing_required_parameter", "missing session.type")
        if update["type"] != "transcription":
            return ("invalid_value", "a transcription session takes session.type transcription")
        fmt = (((update.get("audio") or {}).get("input") or {}).get("format") or {}).get("type")
        if fmt is not None and fmt not in FORMATS:
            return ("invalid_value", f"unsupported audio format {fmt!r}")
        return None

    async def _heard(self, conn: Connection, heard: Heard) -> None:
        if heard.kind == "start":
            conn.extra["item_id"] = self._id("item")
            await conn.send_json(
                {
                    "type": "input_audio_buffer.speech_started",
                    "event_id": self._id("event"),
                    "audio_start_ms": heard.at_ms,
                    "item_id": conn.extra["item_id"],
                }
            )
            return
        if heard.kind != "end":
            return
        item_id = conn.extra.pop("item_id", None) or self._id("item")
        for event in (
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": heard.at_ms},
            {"type": "input_audio_buffer.committed", "previous_item_id": None},
            {
                "type": "conversation.item.added",
                "previous_item_id": None,
                "item": {"id": item_id, "type": "message", "role": "user", "content": []},
            },
        ):
            await conn.send_json({**event, "event_id": self._id("event"), "item_id": item_id})
        self.committed += 1
        await self.notify()
        if self.transcription_delay_s:
            task = asyncio.create_task(self._transcribe(conn, item_id, heard))
            conn.extra.setdefault("tasks", set()).add(task)
        else:
            await self._transcribe(conn, item_id, heard)

    async def _transcribe(self, conn: Connection, item_id: str, heard: Heard) -> None:
        await asyncio.sleep(self.transcription_delay_s)
        if self.fail_transcriptions:
            await conn.send_json(
                {
                    "type": "conversation.item.input_audio_transcription.failed",
                    "event_id": self._id("event"),
                    "item_id": item_id,
                    "content_index": 0,
                    "error": {
                        "type": "transcription_error",
                        "code": "audio_unintelligible",
                        "message": "could not transcribe",
                        "param": None,
                    },
                }
            )
            return
        for i, word in enumerate(heard.text.split()):
            await conn.send_json(
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    "event_id": self._id("event"),
                    "item_id": item_id,
                    "content_index": 0,
                    "delta": word if i == 0 else " " + word,
                }
            )
        self.record_final(heard.text)
        await conn.send_json(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "event_id": self._id("event"),
                "item_id": item_id,
                "content_index": 0,
                "transcript": heard.text,
                "usage": {"type": "duration", "seconds": heard.audio_ms / 1000},
            }
        )
        await self.notify()
