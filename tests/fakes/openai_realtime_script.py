"""The model's side of :mod:`fakes.openai_realtime_conversation`: spoken responses and
function calls, in the GA Realtime event order (wire-protocols.md §3.2). A mixin of
:class:`~fakes.openai_realtime_conversation.FakeRealtimeConversation`."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import attrs
from fakes.stt_ws import Connection

#: μ-law 8 kHz: 8 bytes per millisecond.
BYTES_PER_MS = 8


@attrs.define
class Spoken:
    """A response the fake sent: ids, status, and for a function call its ``call_id``."""

    response_id: str
    item_id: str
    status: str = "completed"
    call_id: str = ""
    audio_ms: int = 0


class ModelScript:
    """Scripting of the model's responses. Uses the fake's ``_send``, ``_id``,
    ``_background``, ``current``, ``notify``, ``chunk_ms`` and ``realtime`` (no stubs here:
    they would shadow the base class's ``notify`` in the MRO)."""

    chunk_ms: int
    realtime: bool
    current: Connection

    def start_response(self, audio: bytes, transcript: str, **kwargs: Any) -> asyncio.Task[Spoken]:
        """:meth:`respond` in the background (to barge in on it)."""
        conn = kwargs.pop("conn", None) or self.current
        return self._background(conn, self.respond(audio, transcript, conn=conn, **kwargs))

    async def respond(
        self,
        audio: bytes,
        transcript: str,
        *,
        chunk_ms: int | None = None,
        realtime: bool | None = None,
        conn: Connection | None = None,
    ) -> Spoken:
        """One spoken response (μ-law ``audio``), in the GA order: ``response.created`` →
        ``output_item.added`` → ``content_part.added`` → ``output_audio.delta`` ×N →
        ``output_audio_transcript.delta`` ×N → ``output_audio.done`` →
        ``output_audio_transcript.done`` → ``content_part.done`` → ``output_item.done`` →
        ``response.done``. A barge-in (or ``response.cancel``) between deltas ends it with
        status ``cancelled``."""
        conn = conn or self.current
        step = (chunk_ms or self.chunk_ms) * BYTES_PER_MS
        paced = self.realtime if realtime is None else realtime
        rid, iid = self._id("resp"), self._id("item")
        ids = {"response_id": rid, "item_id": iid, "output_index": 0}
        part_ids = {**ids, "content_index": 0}
        conn.extra["spoken"][iid] = 0
        conn.extra["cancel"], conn.extra["speaking"] = False, True
        item = {"id": iid, "type": "message", "role": "assistant", "status": "in_progress"}
        await self._created(conn, rid)
        await self._send(conn, {"type": "response.output_item.added", **ids, "item": item})
        part = {"type": "audio", "transcript": ""}
        await self._send(conn, {"type": "response.content_part.added", **part_ids, "part": part})
        sent = 0
        for start in range(0, len(audio), step):
            if conn.extra["cancel"]:
                break
            chunk = audio[start : start + step]
            delta = base64.b64encode(chunk).decode("ascii")
            await self._send(
                conn, {"type": "response.output_audio.delta", **part_ids, "delta": delta}
            )
            sent += len(chunk)
            conn.extra["spoken"][iid] = sent // BYTES_PER_MS
            if paced:
                await asyncio.sleep(len(chunk) / BYTES_PER_MS / 1000)
        status = "cancelled" if conn.extra["cancel"] else "completed"
        conn.extra["speaking"] = False
        for i, word in enumerate(transcript.split()):
            delta = word if i == 0 else " " + word
            kind = "response.output_audio_transcript.delta"
            await self._send(conn, {"type": kind, **part_ids, "delta": delta})
        await self._send(conn, {"type": "response.output_audio.done", **part_ids})
        done = {"type": "response.output_audio_transcript.done", **part_ids}
        await self._send(conn, {**done, "transcript": transcript})
        part = {"type": "audio", "transcript": transcript}
        await self._send(conn, {"type": "response.content_part.done", **part_ids, "part": part})
        content = [{"type": "output_audio", "transcript": transcript}]
        final = {**item, "status": "completed" if status == "completed" else "incomplete"}
        final["content"] = content
        conn.extra["items"].append(final)
        await self._send(conn, {"type": "response.output_item.done", **ids, "item": final})
        await self._done(conn, rid, status, [final])
        return Spoken(rid, iid, status, audio_ms=sent // BYTES_PER_MS)

    async def function_call(
        self,
        name: str,
        arguments: str | dict[str, Any],
        *,
        call_id: str | None = None,
        conn: Connection | None = None,
    ) -> Spoken:
        """A response whose output is one ``function_call`` item: ``output_item.added`` →
        ``function_call_arguments.delta``/``.done`` → ``output_item.done`` →
        ``response.done`` with ``output=[item]``."""
        conn = conn or self.current
        args = arguments if isinstance(arguments, str) else json.dumps(arguments)
        rid, iid, cid = self._id("resp"), self._id("item"), call_id or self._id("call")
        conn.extra["call_ids"].add(cid)
        ids = {"response_id": rid, "item_id": iid, "output_index": 0, "call_id": cid}
        item = {"id": iid, "type": "function_call", "name": name, "call_id": cid}
        await self._created(conn, rid)
        added = {**item, "arguments": "", "status": "in_progress"}
        await self._send(conn, {"type": "response.output_item.added", **ids, "item": added})
        await self._send(
            conn, {"type": "response.function_call_arguments.delta", **ids, "delta": args}
        )
        done = {"type": "response.function_call_arguments.done", **ids, "name": name}
        await self._send(conn, {**done, "arguments": args})
        final = {**item, "arguments": args, "status": "completed"}
        conn.extra["items"].append(final)
        await self._send(conn, {"type": "response.output_item.done", **ids, "item": final})
        await self._done(conn, rid, "completed", [final])
        return Spoken(rid, iid, "completed", call_id=cid)

    async def _created(self, conn: Connection, rid: str) -> None:
        response = {"id": rid, "object": "realtime.response", "status": "in_progress", "output": []}
        await self._send(conn, {"type": "response.created", "response": response})

    async def _done(self, conn: Connection, rid: str, status: str, output: list[Any]) -> None:
        details = (
            {"type": "cancelled", "reason": "turn_detected"} if status == "cancelled" else None
        )
        response = {
            "id": rid,
            "object": "realtime.response",
            "status": status,
            "status_details": details,
            "output": output,
        }
        await self._send(conn, {"type": "response.done", "response": response})
        await self.notify()
