"""A fake speech-to-speech conversation provider for tests: no vendor, scripted by the test,
every call the host makes recorded.

Register it through the real plugin host (it is part of
:class:`voicehost.testing.providers.FakeProvidersPlugin`, id ``fake``)::

    [conversation]
    provider = "fake"

A test drives the current session (:meth:`FakeConversationProvider.wait_for_session`) with
:meth:`FakeConversationSession.emit` (any contract event), :meth:`~FakeConversationSession.
speak` (a spoken item: :class:`~voicehost.AudioOut` chunks, its transcript, ``ResponseDone``)
and :meth:`~FakeConversationSession.drop` (the vendor drops: ``events()`` raises). It reads
what the host sent: :attr:`~FakeConversationSession.audio` (caller audio),
:attr:`~FakeConversationSession.truncates`, :attr:`~FakeConversationSession.tool_results`,
:attr:`~FakeConversationSession.said`, and each session's :attr:`~FakeConversationSession.request`.

Config (``[conversation.fake]``, besides :class:`~voicehost.ConversationConfig`'s keys):
``fail_connects = N`` makes the first N ``connect`` calls of the provider raise a
:class:`~voicehost.ProviderError`; ``refuse_key = true`` makes every one raise a
:class:`~voicehost.ProviderAuthError`; ``greeting_audio_ms`` (default 400) is the length of
the tone spoken for the greeting when the request asks for it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import attrs
from pydantic import Field

from voicehost.contracts import (
    AudioOut,
    BotTranscript,
    ConversationConfig,
    ConversationEvent,
    ConversationProvider,
    ConversationRequest,
    ConversationSession,
    ResponseDone,
)
from voicehost.errors import ProviderAuthError, ProviderError
from voicehost.testing.tones import tone

__all__ = [
    "FakeConversationConfig",
    "FakeConversationProvider",
    "FakeConversationSession",
    "ToolResultSent",
]

_DROP = object()
_END = object()


class FakeConversationConfig(ConversationConfig):
    """``[conversation.fake]``."""

    fail_connects: int = Field(0, ge=0, description="The first N connects fail.")
    refuse_key: bool = Field(False, description="Every connect fails as a refused key.")
    greeting_audio_ms: int = Field(
        400, ge=20, description="Length of the greeting's tone, ms (a multiple of 20)."
    )


@attrs.frozen
class ToolResultSent:
    """A ``send_tool_result`` the host made."""

    call_id: str
    output: str
    respond: bool


class FakeConversationSession(ConversationSession):
    """One scripted session; see the module docstring."""

    def __init__(self, provider: FakeConversationProvider, request: ConversationRequest) -> None:
        self.provider = provider
        self.request = request
        self.audio = bytearray()
        self.truncates: list[tuple[str, int]] = []
        self.tool_results: list[ToolResultSent] = []
        self.said: list[str] = []
        self.closed = False
        self._connected = False
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        self._items = itertools.count(1)
        self._audio_changed = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        config = self.request.config
        assert isinstance(config, FakeConversationConfig)
        self.provider.connects += 1
        if config.refuse_key:
            raise ProviderAuthError("fake", "key refused")
        if self.provider.connects <= config.fail_connects or self.provider.refuse_connects:
            raise ProviderError("fake", f"connect {self.provider.connects} refused")
        self._connected = True
        self.provider.sessions.append(self)
        self.provider._changed.set()
        if self.request.greet and config.greeting:
            self.speak(
                tone(config.greeting_audio_ms / 1000), config.greeting, response_id="greeting"
            )

    def send_audio(self, audio: bytes) -> None:
        if self._connected and not self.closed:
            self.audio += audio
            self._audio_changed.set()

    async def events(self) -> AsyncIterator[ConversationEvent]:  # type: ignore[override]
        while True:
            event = await self._events.get()
            if event is _END:
                return
            if event is _DROP:
                raise ProviderError("fake", "the vendor dropped the connection")
            yield event

    async def send_tool_result(self, call_id: str, output: str, *, respond: bool) -> None:
        self.tool_results.append(ToolResultSent(call_id, output, respond))

    async def truncate(self, item_id: str, audio_end_ms: int) -> None:
        self.truncates.append((item_id, audio_end_ms))

    async def say(self, instructions: str) -> None:
        self.said.append(instructions)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._connected = False
            self._events.put_nowait(_END)

    # --- scripting ---------------------------------------------------------------------

    def emit(self, *events: ConversationEvent) -> None:
        """Deliver ``events`` to the host, in order."""
        for event in events:
            self._events.put_nowait(event)

    def speak(
        self,
        audio: bytes,
        transcript: str = "",
        *,
        chunk_bytes: int = 800,
        response_id: str = "",
        item_id: str = "",
        done: bool = True,
    ) -> str:
        """A spoken item: ``audio`` (μ-law) in ``chunk_bytes`` chunks, then its transcript
        and (``done``) ``ResponseDone``. Returns its item id."""
        item = item_id or f"item_{next(self._items)}"
        response = response_id or f"resp_{item}"
        for start in range(0, len(audio), chunk_bytes):
            self.emit(AudioOut(audio[start : start + chunk_bytes], item, response))
        if transcript:
            self.emit(BotTranscript(transcript, item, response))
        if done:
            self.emit(ResponseDone(response))
        return item

    def drop(self) -> None:
        """The vendor drops the connection: ``events()`` raises a ProviderError."""
        self._connected = False
        self._events.put_nowait(_DROP)

    async def wait_for_audio(self, n_bytes: int, timeout: float = 10.0) -> bytes:  # noqa: ASYNC109
        """Wait until at least ``n_bytes`` of caller audio arrived; returns all of it."""

        async def check() -> None:
            while len(self.audio) < n_bytes:
                self._audio_changed.clear()
                await self._audio_changed.wait()

        await asyncio.wait_for(check(), timeout)
        return bytes(self.audio)


class FakeConversationProvider(ConversationProvider[FakeConversationConfig]):
    """``fake``: scripted sessions, μ-law in and out. Attributes: ``sessions`` (connected
    ones, in order), ``connects`` (attempts), ``refuse_connects`` (set it to make every
    later connect fail)."""

    id = "fake"
    label = "Fake conversation (tests)"
    config_class = FakeConversationConfig

    def __init__(self) -> None:
        self.sessions: list[FakeConversationSession] = []
        self.connects = 0
        self.refuse_connects = False
        self._changed = asyncio.Event()

    def create_session(self, request: ConversationRequest) -> FakeConversationSession:
        return FakeConversationSession(self, request)

    async def wait_for_session(
        self,
        index: int = 0,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> FakeConversationSession:
        """The ``index``-th connected session, once it exists."""

        async def check() -> FakeConversationSession:
            while len(self.sessions) <= index:
                self._changed.clear()
                await self._changed.wait()
            return self.sessions[index]

        return await asyncio.wait_for(check(), timeout)
