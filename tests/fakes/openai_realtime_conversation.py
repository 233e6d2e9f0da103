"""A fake OpenAI Realtime API for speech-to-speech conversations (wire-protocols.md §3.2-3.3).

A WebSocket server on 127.0.0.1 (the base of :mod:`fakes.stt_ws`), checking what the
``openai`` SDK sends as the GA Realtime reference documents it:

- ``GET /v1/realtime?model=…`` (``temperature`` and any other query recorded in
  ``conn.query``) with ``Authorization: Bearer <key>``, else HTTP 401 (400 without ``model``);
- JSON text frames only; ``session.update`` in the GA conversation shape (``type:
  "realtime"``, formats, turn detection, tools as function schemas, ``tool_choice``; see
  :mod:`fakes.openai_realtime_checks`), ``conversation.item.create`` items,
  ``conversation.item.truncate`` of a known assistant item within its audio,
  ``function_call_output`` answering a known call. A mistake is appended to
  ``conn.violations`` (tests assert :attr:`FakeRealtimeConversation.violations` is empty)
  and answered with an ``error`` event, as the vendor does.

The model's side (``respond``, ``function_call``) lives in :mod:`fakes.openai_realtime_script`,
the checks in :mod:`fakes.openai_realtime_checks`. A pytest fixture ``realtime_fake`` (key
``sk-test``) is in ``tests/conversation/conftest.py``.

Records, per connection (``fake.connections[i]``, ``fake.current``): ``conn.query``,
``conn.audio`` (every appended byte, decoded, in order), ``conn.messages`` (every client
event in order; appends without their payload), ``conn.texts(type)`` to filter them,
``conn.extra["session"]`` (the effective session), ``conn.extra["items"]`` (the
conversation: created and spoken items, in order).

Knobs (attributes, set before or during a test):
    ack_override: merged into the ``session`` of ``session.updated`` (e.g.
        ``{"audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}}}}``).
    greeting_audio / greeting_transcript: μ-law bytes and text answered automatically to the
        first ``response.create`` of a connection (None: no automatic answer).
    reply_audio / reply_transcript: answered to every later ``response.create`` (None: none).
    on_response_create: hooks ``hook(conn, event) -> bool | Awaitable[bool]`` run on every
        ``response.create`` before the automatic answers; one returning True handles it.
    chunk_ms: audio per ``response.output_audio.delta`` of automatic answers (default 100).
    realtime: pace automatic answers in real time (one delta per ``chunk_ms``).
    refuse_all / refuse_next: HTTP statuses for upgrades (from the base class).

Scripting (async; ``conn`` defaults to the latest connection):
    ``caller_speech_started(conn=None) -> item_id``: ``input_audio_buffer.speech_started``;
        cancels a response in progress when the session's ``interrupt_response`` is on.
    ``caller_speech_stopped(item_id, conn=None)``: ``speech_stopped``, ``committed``,
        ``conversation.item.added`` (user).
    ``caller_transcript(item_id, text, *, deltas=True, final_text=None, conn=None)``:
        ``…input_audio_transcription.delta`` per word, then ``…completed`` with
        ``final_text`` (default ``text``; ``""`` tests the fall-back on deltas).
    ``caller_says(text, conn=None) -> item_id``: the three above in order.
    ``respond(audio, transcript, *, chunk_ms=None, realtime=None, conn=None) -> Spoken``:
        one spoken response, the full GA sequence (``response.created`` …
        ``response.done``); returns its ids and status (``cancelled`` when cut off).
    ``start_response(...) -> asyncio.Task[Spoken]``: the same, running in the background.
    ``function_call(name, arguments, *, call_id=None, conn=None) -> Spoken``: a response
        whose output is one ``function_call`` item (``Spoken.call_id``).
    ``send_error(code, message="…", conn=None)``: an ``error`` event (non-fatal).
    ``expire_session(conn=None)``: the ``session_expired`` error, then a clean close (1000).
    ``close_connection(code=1000, conn=None)``: a clean close from the server.
    ``drop(conn=None)``: an abrupt end (TCP aborted, no close frame).
    ``wait_for(condition, within=10.0)``: wait until ``condition()`` holds (woken on every
        client event).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import inspect
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from fakes.openai_realtime_checks import DEFAULT_SESSION, check_item, check_session_update, merge
from fakes.openai_realtime_script import ModelScript, Spoken
from fakes.stt_ws import Connection, FakeSTTServer

__all__ = ["FakeRealtimeConversation", "Spoken"]

ResponseHook = Callable[[Connection, dict[str, Any]], "bool | Awaitable[bool]"]


class FakeRealtimeConversation(ModelScript, FakeSTTServer):
    """Fake ``wss://api.openai.com/v1/realtime?model=gpt-realtime`` (see the module doc)."""

    def __init__(self, api_key: str = "sk-test") -> None:
        super().__init__(api_key, auth_scheme="Bearer", path="/v1/realtime")
        self.ack_override: dict[str, Any] | None = None
        self.greeting_audio: bytes | None = None
        self.greeting_transcript = "Hello, how can I help?"
        self.reply_audio: bytes | None = None
        self.reply_transcript = "Sure."
        self.on_response_create: list[ResponseHook] = []
        self.chunk_ms = 100
        self.realtime = False
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url`` (``http://127.0.0.1:<port>/v1``)."""
        return f"{self.origin}/v1"

    @property
    def violations(self) -> list[str]:
        """Protocol mistakes over all connections."""
        return [v for conn in self.connections for v in conn.violations]

    def check_request(self, conn_path: str, query: dict[str, list[str]]) -> str | None:
        if not query.get("model"):
            return "a conversation session needs ?model="
        return None

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):04d}"

    async def _send(self, conn: Connection, event: dict[str, Any]) -> None:
        await conn.send_json({"event_id": self._id("event"), **event})

    def _error(self, code: str, message: str, type_: str = "invalid_request_error") -> dict:
        return {"type": "error", "error": {"type": type_, "code": code, "message": message}}

    async def _refuse(self, conn: Connection, problem: tuple[str, str]) -> None:
        conn.violations.append(f"{problem[0]}: {problem[1]}")
        await self._send(conn, self._error(*problem))

    # --- the protocol ----------------------------------------------------------------------

    async def serve(self, conn: Connection) -> None:
        session = copy.deepcopy(DEFAULT_SESSION)
        session["model"] = conn.query["model"][0]
        conn.extra.update(session=session, items=[], call_ids=set(), spoken={}, responses=0)
        conn.extra["configured"] = False
        await self._send(conn, {"type": "session.created", "session": session})
        async for raw in conn.ws:
            if isinstance(raw, bytes):
                conn.messages.append(("binary", len(raw)))
                await self._refuse(conn, ("invalid_frame", "binary frames are not supported"))
                await self.notify()
                continue
            try:
                event = json.loads(raw)
            except ValueError:
                conn.messages.append(("text", raw))
                await self._refuse(conn, ("invalid_json", "the frame is not JSON"))
                await self.notify()
                continue
            kind = event.get("type") if isinstance(event, dict) else None
            if kind == "input_audio_buffer.append":
                conn.messages.append(("text", {"type": kind}))
                await self._append(conn, event)
                continue
            conn.messages.append(("text", event))
            handler = self._handlers.get(kind or "")
            if handler is None:
                await self._refuse(conn, ("invalid_value", f"unknown event type {kind!r}"))
            else:
                await handler(self, conn, event)
            await self.notify()

    async def _append(self, conn: Connection, event: dict[str, Any]) -> None:
        if not conn.extra["configured"]:
            conn.violations.append("audio appended before session.update")
        try:
            audio = base64.b64decode(event.get("audio", ""), validate=True)
        except (binascii.Error, ValueError):
            await self._refuse(conn, ("invalid_value", "audio is not base64"))
            return
        await self.received_audio(conn, audio)

    async def _session_update(self, conn: Connection, event: dict[str, Any]) -> None:
        update = event.get("session")
        problem = check_session_update(update)
        if problem is not None:
            await self._refuse(conn, problem)
            return
        assert isinstance(update, dict)
        conn.extra["session"] = merge(conn.extra["session"], update)
        conn.extra["configured"] = True
        ack = conn.extra["session"]
        if self.ack_override:
            ack = merge(ack, self.ack_override)
        await self._send(conn, {"type": "session.updated", "session": ack})

    async def _item_create(self, conn: Connection, event: dict[str, Any]) -> None:
        item = event.get("item")
        problem = check_item(item, conn.extra["call_ids"])
        if problem is not None:
            await self._refuse(conn, problem)
            return
        item = {"id": self._id("item"), "object": "realtime.item", "status": "completed", **item}
        if item["type"] == "function_call":
            conn.extra["call_ids"].add(item["call_id"])
        conn.extra["items"].append(item)
        for kind in ("conversation.item.added", "conversation.item.done"):
            await self._send(conn, {"type": kind, "previous_item_id": None, "item": item})

    async def _truncate(self, conn: Connection, event: dict[str, Any]) -> None:
        item_id, end = event.get("item_id"), event.get("audio_end_ms")
        spoken: dict[str, int] = conn.extra["spoken"]
        if item_id not in spoken:
            await self._refuse(conn, ("invalid_value", f"no assistant audio item {item_id!r}"))
        elif event.get("content_index") != 0:
            await self._refuse(conn, ("invalid_value", "content_index must be 0"))
        elif not isinstance(end, int) or isinstance(end, bool) or not 0 <= end <= spoken[item_id]:
            await self._refuse(
                conn, ("invalid_value", f"audio_end_ms {end!r} beyond {spoken[item_id]} ms")
            )
        else:
            await self._send(
                conn,
                {
                    "type": "conversation.item.truncated",
                    "item_id": item_id,
                    "content_index": 0,
                    "audio_end_ms": end,
                },
            )

    async def _response_create(self, conn: Connection, event: dict[str, Any]) -> None:
        if not conn.extra["configured"]:
            conn.violations.append("response.create before session.update")
        conn.extra["responses"] += 1
        first = conn.extra["responses"] == 1
        for hook in list(self.on_response_create):
            handled = hook(conn, event)
            if inspect.isawaitable(handled):
                handled = await handled
            if handled:
                return
        audio, text = (
            (self.greeting_audio, self.greeting_transcript)
            if first
            else (self.reply_audio, self.reply_transcript)
        )
        if audio is not None:
            self._background(conn, self.respond(audio, text, conn=conn))

    async def _response_cancel(self, conn: Connection, event: dict[str, Any]) -> None:
        conn.extra["cancel"] = True

    async def _ignore(self, conn: Connection, event: dict[str, Any]) -> None:
        return None

    _handlers: ClassVar[dict[str, Callable[..., Awaitable[None]]]] = {
        "session.update": _session_update,
        "conversation.item.create": _item_create,
        "conversation.item.truncate": _truncate,
        "response.create": _response_create,
        "response.cancel": _response_cancel,
        "input_audio_buffer.commit": _ignore,
        "input_audio_buffer.clear": _ignore,
        "conversation.item.delete": _ignore,
        "conversation.item.retrieve": _ignore,
    }

    def _background(self, conn: Connection, work: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(work)
        conn.extra.setdefault("tasks", set()).add(task)
        task.add_done_callback(conn.extra["tasks"].discard)
        return task

    # --- scripting: the caller -------------------------------------------------------------

    async def caller_speech_started(self, conn: Connection | None = None) -> str:
        """``input_audio_buffer.speech_started``; returns the caller item's id. With the
        session's ``interrupt_response`` on, a response in progress is cancelled."""
        conn = conn or self.current
        item_id = self._id("item")
        turn = conn.extra["session"]["audio"]["input"].get("turn_detection") or {}
        if conn.extra.get("speaking") and turn.get("interrupt_response", True):
            conn.extra["cancel"] = True
        await self._send(
            conn,
            {"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": item_id},
        )
        return item_id

    async def caller_speech_stopped(self, item_id: str, conn: Connection | None = None) -> None:
        """``speech_stopped``, ``committed`` and the user item's ``conversation.item.added``."""
        conn = conn or self.current
        item = {"id": item_id, "type": "message", "role": "user", "content": []}
        conn.extra["items"].append(item)
        for event in (
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 0, "item_id": item_id},
            {"type": "input_audio_buffer.committed", "previous_item_id": None, "item_id": item_id},
            {"type": "conversation.item.added", "previous_item_id": None, "item": item},
        ):
            await self._send(conn, event)

    async def caller_transcript(
        self,
        item_id: str,
        text: str,
        *,
        deltas: bool = True,
        final_text: str | None = None,
        conn: Connection | None = None,
    ) -> None:
        """Transcription deltas (one per word) then ``…completed`` with ``final_text``."""
        conn = conn or self.current
        base = {"item_id": item_id, "content_index": 0}
        if deltas:
            for i, word in enumerate(text.split()):
                delta = word if i == 0 else " " + word
                kind = "conversation.item.input_audio_transcription.delta"
                await self._send(conn, {"type": kind, **base, "delta": delta})
        kind = "conversation.item.input_audio_transcription.completed"
        final = text if final_text is None else final_text
        await self._send(conn, {"type": kind, **base, "transcript": final})

    async def caller_says(self, text: str, conn: Connection | None = None) -> str:
        """A whole caller turn: speech started, stopped, its transcript. Returns the item id."""
        conn = conn or self.current
        item_id = await self.caller_speech_started(conn)
        await self.caller_speech_stopped(item_id, conn)
        await self.caller_transcript(item_id, text, conn=conn)
        return item_id

    # --- scripting: failures ---------------------------------------------------------------

    async def send_error(
        self, code: str, message: str = "scripted error", conn: Connection | None = None
    ) -> None:
        """An ``error`` event with ``code`` (the session stays open)."""
        await self._send(conn or self.current, self._error(code, message))

    async def expire_session(self, conn: Connection | None = None) -> None:
        """The vendor's session-length limit: ``error`` ``session_expired``, then a clean
        close (1000)."""
        conn = conn or self.current
        message = "Your session hit the maximum duration of 60 minutes."
        await self._send(conn, self._error("session_expired", message))
        await self.close_connection(1000, conn)

    async def close_connection(self, code: int = 1000, conn: Connection | None = None) -> None:
        """Close ``conn`` cleanly from the server side with ``code``."""
        conn = conn or self.current
        await conn.ws.close(code)
