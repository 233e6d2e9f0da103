"""Fixtures for the conversation (speech-to-speech) tests: the fake OpenAI Realtime
conversation server, configs pointing at it, sessions, and a log of a session's events.

The fakes live in ``tests/fakes/`` and are imported as the ``fakes`` package, so ``tests/``
is put on ``sys.path`` here (pytest runs with ``--import-mode=importlib``, which does not do
it).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from fakes.openai_realtime_conversation import FakeRealtimeConversation  # noqa: E402

from voicehost import (  # noqa: E402
    CallContext,
    ConversationEvent,
    ConversationRequest,
    ConversationSession,
    ToolSpec,
)
from voicehost_openai_realtime import OpenAIRealtimeConfig, OpenAIRealtimeProvider  # noqa: E402

CALL_SID = "CA" + "ab" * 16
TOOLS = (
    ToolSpec("hangup", "End the call.", {"type": "object", "properties": {}}),
    ToolSpec(
        "send_dtmf",
        "Press phone keys.",
        {"type": "object", "properties": {"digits": {"type": "string"}}, "required": ["digits"]},
    ),
)


class EventLog:
    """Reads a session's :meth:`~voicehost.ConversationSession.events` in the background;
    tests wait on it with :meth:`wait_for`. ``error`` holds what the iterator raised."""

    def __init__(self, session: ConversationSession) -> None:
        self.events: list[ConversationEvent] = []
        self.error: BaseException | None = None
        self.ended = False
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._read(session))

    async def _read(self, session: ConversationSession) -> None:
        try:
            async for event in session.events():
                self.events.append(event)
                self._changed.set()
        except Exception as exc:
            self.error = exc
        finally:
            self.ended = True
            self._changed.set()

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, condition: Callable[[], bool], within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while True:
                self._changed.clear()
                if condition():
                    return
                await self._changed.wait()


@pytest.fixture
async def realtime_fake() -> AsyncIterator[FakeRealtimeConversation]:
    """A running fake OpenAI Realtime conversation API accepting key ``sk-test``."""
    async with FakeRealtimeConversation(api_key="sk-test") as fake:
        yield fake


@pytest.fixture
def realtime_config(realtime_fake: FakeRealtimeConversation) -> OpenAIRealtimeConfig:
    """The provider's parsed config pointed at the fake (no greeting)."""
    return OpenAIRealtimeConfig(
        api_key="sk-test", base_url=realtime_fake.base_url, connect_timeout_s=5.0
    )


@pytest.fixture
async def open_session() -> AsyncIterator[Callable[..., Any]]:
    """``await open_session(config, history=..., greet=..., tools=..., connect=True)``: a
    session of the provider (connected unless ``connect=False``) with an :class:`EventLog`;
    returns ``(session, log)``. Everything is closed at the end of the test."""
    provider = OpenAIRealtimeProvider()
    opened: list[tuple[ConversationSession, EventLog | None]] = []

    async def make(
        config: OpenAIRealtimeConfig,
        *,
        history: list[Any] | None = None,
        greet: bool = True,
        tools: tuple[ToolSpec, ...] = TOOLS,
        instructions: str = "Be brief.",
        connect: bool = True,
    ) -> tuple[ConversationSession, EventLog | None]:
        request = ConversationRequest(
            config=config,
            context=CallContext(call_sid=CALL_SID, history=list(history or [])),
            instructions=instructions,
            tools=tools,
            greet=greet,
        )
        session = provider.create_session(request)
        entry: tuple[ConversationSession, EventLog | None] = (session, None)
        if connect:
            await session.connect()
            entry = (session, EventLog(session))
        opened.append(entry)
        return entry

    yield make
    for session, log in opened:
        await session.close()
        if log is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await log.task
    await provider.aclose()
