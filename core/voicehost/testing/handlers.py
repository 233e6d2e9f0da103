"""A :class:`~voicehost.server.CallHandler` that records what the server tells it."""

from __future__ import annotations

import asyncio
from typing import Any

from voicehost.server.handler import CallHandler

__all__ = ["RecordingHandler"]


class RecordingHandler(CallHandler):
    """Records every callback as ``(name, call_sid, *args)``; says ``greeting`` on start.

    Attributes:
        events: the records, in order; names ``start``, ``partial``, ``final``,
            ``speech_start``, ``dtmf``, ``end``.
        call_events: every lifecycle :class:`~voicehost.server.events.CallEvent`, in order
            (kept apart from ``events``).
        calls: every :class:`~voicehost.server.Call` started.
        replies: the greeting replies (:class:`~voicehost.server.Reply`).
    """

    def __init__(self, greeting: str = "") -> None:
        self.greeting = greeting
        self.events: list[tuple[Any, ...]] = []
        self.calls: list[Any] = []
        self.replies: list[Any] = []
        self.call_events: list[Any] = []
        self._changed = asyncio.Event()

    def names(self) -> list[str]:
        """The callback names in order."""
        return [e[0] for e in self.events]

    def _add(self, *event: Any) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(
        self,
        name: str,
        count: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> tuple[Any, ...]:
        """Wait until ``count`` events called ``name`` were recorded; returns the last."""

        async def check() -> None:
            while self.names().count(name) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(check(), timeout)
        return [e for e in self.events if e[0] == name][count - 1]

    async def on_call_start(self, call: Any) -> None:
        self.calls.append(call)
        if self.greeting:
            self.replies.append(call.say(self.greeting))
        self._add("start", call.call_sid)

    async def on_partial(self, call: Any, text: str) -> None:
        self._add("partial", call.call_sid, text)

    async def on_transcript(self, call: Any, text: str) -> None:
        self._add("final", call.call_sid, text)

    async def on_provisional_transcript(self, call: Any, text: str | None) -> None:
        self._add("provisional", call.call_sid, text)

    async def on_speech_start(self, call: Any) -> None:
        self._add("speech_start", call.call_sid)

    async def on_dtmf(self, call: Any, digit: str) -> None:
        self._add("dtmf", call.call_sid, digit)

    async def on_call_end(self, call: Any, reason: str) -> None:
        self._add("end", call.call_sid, reason)

    async def on_call_event(self, event: Any) -> None:
        self.call_events.append(event)
        self._changed.set()

    async def wait_for_call_event(
        self,
        call_sid: str,
        kind: str,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> Any:
        """Wait for the lifecycle event ``kind`` of ``call_sid``; returns it."""

        def found() -> Any:
            return next(
                (e for e in self.call_events if e.call_sid == call_sid and e.kind == kind), None
            )

        async def check() -> Any:
            while (event := found()) is None:
                self._changed.clear()
                await self._changed.wait()
            return event

        return await asyncio.wait_for(check(), timeout)

    def lifecycle(self, call_sid: str) -> list[tuple[str, str]]:
        """``[(kind, reason or answered_by), …]`` of one call's lifecycle events."""
        return [
            (e.kind, e.reason or e.answered_by) for e in self.call_events if e.call_sid == call_sid
        ]
