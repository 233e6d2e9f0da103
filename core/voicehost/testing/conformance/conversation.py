"""The speech-to-speech conversation conformance tests. See :mod:`voicehost.testing.conformance`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import pytest

from voicehost.config_model import ProviderConfig
from voicehost.contracts import (
    AudioOut,
    CallContext,
    ConversationConfig,
    ConversationError,
    ConversationEvent,
    ConversationProvider,
    ConversationRequest,
    ConversationSession,
    ResponseDone,
    ToolCall,
    ToolSpec,
)
from voicehost.errors import ProviderError
from voicehost.testing.conformance.base import CALL_SID, STREAM_SID, _ProviderChecks
from voicehost.testing.conformance.support import FRAME_BYTES, bounded

#: What the kit declares to the model: the host's call tools.
KIT_TOOLS = (
    ToolSpec("hangup", "End the call.", {"type": "object", "properties": {}}),
    ToolSpec(
        "send_dtmf",
        "Press phone keys.",
        {"type": "object", "properties": {"digits": {"type": "string"}}, "required": ["digits"]},
    ),
)


class _EventReader:
    """Reads :meth:`ConversationSession.events` in the background, as the host does."""

    def __init__(self, session: ConversationSession) -> None:
        self.events: list[ConversationEvent] = []
        self.error: BaseException | None = None
        self.ended = False
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._read(session))

    async def _read(self, session: ConversationSession) -> None:
        try:
            stream = session.events()
            assert hasattr(stream, "__anext__"), "events() must return an async iterator"
            async for event in stream:
                self.events.append(event)
                self._changed.set()
        except BaseException as exc:  # recorded; the test decides
            self.error = exc
        finally:
            self.ended = True
            self._changed.set()

    def since(self, start: int, kind: type) -> list[Any]:
        return [e for e in self.events[start:] if isinstance(e, kind)]

    async def wait_for(self, condition: Callable[[], bool], within: float, what: str) -> None:
        async def wait() -> None:
            while True:
                self._changed.clear()
                if condition():
                    return
                if self.ended:
                    pytest.fail(f"events() ended ({self.error!r}) while waiting for {what}")
                await self._changed.wait()

        await bounded(wait(), within, what)


class ConversationConformance(_ProviderChecks):
    """The speech-to-speech contract (:class:`~voicehost.ConversationProvider`), as tests.

    The vendor is the plugin author's: override ``config`` to point the provider at a fake
    vendor (started by another fixture) whose model speaks when asked to (the greeting,
    :meth:`~voicehost.ConversationSession.say`). A complete test module::

        import pytest
        import pytest_asyncio

        from voicehost.testing.conformance import ConversationConformance, config_from_table
        from voicehost_myvoice import MyVoiceProvider
        from myfakes import FakeVendor


        class TestMyVoice(ConversationConformance):
            @pytest.fixture
            def provider(self):
                return MyVoiceProvider()

            @pytest_asyncio.fixture
            async def vendor(self):
                async with FakeVendor(speaks=True) as fake:
                    yield fake

            @pytest.fixture
            def config(self, provider, vendor):
                return config_from_table(
                    provider, {"api_key": "k", "base_url": vendor.url, "greeting": "Hi!"}
                )

            @pytest.fixture
            def refused_config(self, provider, refusing_url):
                return config_from_table(provider, {"api_key": "k", "base_url": refusing_url})

            @pytest.fixture
            def tool_call_trigger(self, vendor):
                return lambda: vendor.call_tool("hangup", "{}")   # or None

    Fixtures to override: ``provider`` (required), ``config`` (its ``greeting`` must not be
    empty), ``refused_config`` (default None: that test is skipped), ``tool_call_trigger``
    (an async callable making the vendor's model call a tool; default None: the tool-result
    test is skipped).

    Checked: ``config_class`` subclasses :class:`~voicehost.ConversationConfig`; ``close``
    is idempotent (also without ``connect``); ``send_audio`` never blocks or raises (before
    ``connect``, live, after ``close``); ``events()`` ends after ``close``; a refused
    endpoint raises :class:`~voicehost.ProviderError` from ``connect``; the greeting comes
    as :class:`~voicehost.AudioOut` in ``output_format(config)`` (whole samples) followed
    by :class:`~voicehost.ResponseDone`; ``truncate`` and ``say`` work on a live session
    (no :class:`~voicehost.ConversationError`, ``say`` makes the model speak); a
    :class:`~voicehost.ToolCall` is answered with ``send_tool_result``.
    """

    provider_type: ClassVar[type] = ConversationProvider
    #: Bound of ``connect()``, s.
    connect_within_s: ClassVar[float] = 30.0
    #: Bound of one ``send_audio`` call, s (the contract: it never blocks).
    send_audio_within_s: ClassVar[float] = 0.5
    #: Bound of a response (the greeting, an answer), s.
    response_within_s: ClassVar[float] = 30.0
    #: Bound of ``close()`` and of ``events()`` ending after it, s.
    close_within_s: ClassVar[float] = 10.0

    @pytest.fixture
    def refused_config(self, provider: Any, refusing_url: str) -> ProviderConfig | None:
        """A config whose vendor endpoint refuses connections; None skips the check."""
        return None

    @pytest.fixture
    def tool_call_trigger(self) -> Callable[[], Awaitable[Any]] | None:
        """An async callable that makes the vendor's model call a tool; None skips that test."""
        return None

    # --- plumbing --------------------------------------------------------------------------

    def _request(self, provider: Any, config: ProviderConfig, *, greet: bool) -> Any:
        fmt = provider.input_formats[0]
        context = CallContext(call_sid=CALL_SID, stream_sid=STREAM_SID, from_number="+15550100")
        assert isinstance(config, ConversationConfig)
        return ConversationRequest(
            config=config,
            context=context,
            instructions=config.instructions,
            tools=KIT_TOOLS,
            greet=greet,
            input_format=fmt,
        )

    def _create(self, provider: Any, config: ProviderConfig, *, greet: bool = True) -> Any:
        session = provider.create_session(self._request(provider, config, greet=greet))
        assert isinstance(session, ConversationSession), (
            f"create_session() returned a {type(session).__name__}, not a ConversationSession"
        )
        return session

    @contextlib.asynccontextmanager
    async def _live(
        self, provider: Any, config: ProviderConfig, *, greet: bool = True
    ) -> AsyncIterator[tuple[ConversationSession, _EventReader]]:
        session = self._create(provider, config, greet=greet)
        reader: _EventReader | None = None
        try:
            await bounded(session.connect(), self.connect_within_s, "connect()")
            assert session.connected, "connected is False after connect()"
            reader = _EventReader(session)
            yield session, reader
        finally:
            await bounded(session.close(), self.close_within_s, "close()")
            if reader is not None:
                await bounded(reader.task, self.close_within_s, "events() ending after close()")

    def _send_frames(self, session: ConversationSession, count: int = 25) -> None:
        for _ in range(count):
            started = time.monotonic()
            session.send_audio(b"\xff" * FRAME_BYTES)
            took = time.monotonic() - started
            assert took < self.send_audio_within_s, f"send_audio() blocked for {took:.2f} s"

    async def _greeting(self, reader: _EventReader) -> list[AudioOut]:
        await reader.wait_for(
            lambda: reader.since(0, ResponseDone), self.response_within_s, "the greeting"
        )
        done_at = next(i for i, e in enumerate(reader.events) if isinstance(e, ResponseDone))
        return [e for e in reader.events[:done_at] if isinstance(e, AudioOut)]

    # --- the checks ------------------------------------------------------------------------

    def test_config_is_a_conversation_config(self, provider: Any, config: ProviderConfig) -> None:
        """``config_class`` subclasses :class:`~voicehost.ConversationConfig` (the host reads
        its instructions, greeting, tools …); ``output_format(config)`` is declared."""
        assert issubclass(provider.config_class, ConversationConfig)
        assert provider.input_formats, "input_formats is empty"
        assert provider.output_format(config) in provider.output_formats

    @pytest.mark.asyncio
    async def test_close_is_idempotent_and_send_audio_never_raises(
        self, provider: Any, config: ProviderConfig
    ) -> None:
        """Without ``connect``: ``send_audio`` is discarded, ``close`` twice is fine,
        ``events()`` of a closed session ends."""
        session = self._create(provider, config)
        assert session.connected is False
        self._send_frames(session, 5)
        await bounded(session.close(), self.close_within_s, "close()")
        await bounded(session.close(), self.close_within_s, "a second close()")
        self._send_frames(session, 5)
        leftover = await bounded(_drain(session), self.close_within_s, "events() after close()")
        assert not [e for e in leftover if isinstance(e, AudioOut)]

    @pytest.mark.asyncio
    async def test_live_session_takes_audio_and_ends_on_close(
        self, provider: Any, config: ProviderConfig
    ) -> None:
        """Connected: ``send_audio`` never blocks; after ``close`` (twice) ``connected`` is
        False, ``events()`` ends without raising, ``send_audio`` is discarded."""
        async with self._live(provider, config, greet=False) as (session, reader):
            self._send_frames(session)
            await asyncio.sleep(0)
            await bounded(session.close(), self.close_within_s, "close()")
            await bounded(session.close(), self.close_within_s, "a second close()")
            assert session.connected is False
            await bounded(reader.task, self.close_within_s, "events() ending after close()")
            assert reader.error is None, f"events() raised after close(): {reader.error!r}"
            self._send_frames(session, 5)

    @pytest.mark.asyncio
    async def test_refused_endpoint_raises_provider_error(
        self, provider: Any, refused_config: ProviderConfig | None
    ) -> None:
        """``connect`` to an endpoint that refuses connections raises
        :class:`~voicehost.ProviderError`."""
        if refused_config is None:
            pytest.skip("no refused_config fixture")
        session = self._create(provider, refused_config)
        try:
            with pytest.raises(ProviderError):
                await bounded(session.connect(), self.connect_within_s, "a refused connect()")
            assert session.connected is False
        finally:
            await bounded(session.close(), self.close_within_s, "close()")

    @pytest.mark.asyncio
    async def test_greeting_plays_in_the_output_format(
        self, provider: Any, config: ProviderConfig
    ) -> None:
        """With a greeting, the model speaks first: :class:`~voicehost.AudioOut` chunks in
        ``output_format(config)`` (whole samples, with an item id), then
        :class:`~voicehost.ResponseDone`."""
        assert isinstance(config, ConversationConfig) and config.greeting, (
            "the conformance config needs a greeting"
        )
        fmt = provider.output_format(config)
        async with self._live(provider, config) as (_, reader):
            audio = await self._greeting(reader)
        assert audio, "no AudioOut before the greeting's ResponseDone"
        for chunk in audio:
            assert isinstance(chunk.audio, bytes) and chunk.audio, "an empty AudioOut"
            assert len(chunk.audio) % (fmt.sample_width * fmt.channels) == 0, (
                f"an AudioOut of {len(chunk.audio)} bytes is not whole {fmt} samples"
            )
            assert chunk.item_id, "AudioOut.item_id is empty (truncate needs it)"

    @pytest.mark.asyncio
    async def test_truncate_and_say_on_a_live_session(
        self, provider: Any, config: ProviderConfig
    ) -> None:
        """After the greeting: ``truncate`` of its item at half its length is accepted (no
        :class:`~voicehost.ConversationError`), and ``say`` makes the model speak again."""
        fmt = provider.output_format(config)
        async with self._live(provider, config) as (session, reader):
            audio = await self._greeting(reader)
            played_ms = int(
                fmt.duration_ms(sum(len(a.audio) for a in audio if a.item_id == audio[0].item_id))
            )
            start = len(reader.events)
            await bounded(session.truncate(audio[0].item_id, played_ms // 2), 5.0, "truncate()")
            await bounded(session.say("Say goodbye to the caller."), 5.0, "say()")
            await reader.wait_for(
                lambda: reader.since(start, ResponseDone), self.response_within_s, "say()'s answer"
            )
            assert reader.since(start, AudioOut), "say() made no audio"
            errors = reader.since(start, ConversationError)
            assert not errors, f"the vendor refused truncate or say: {errors!r}"

    @pytest.mark.asyncio
    async def test_tool_call_is_answered_with_send_tool_result(
        self,
        provider: Any,
        config: ProviderConfig,
        tool_call_trigger: Callable[[], Awaitable[Any]] | None,
    ) -> None:
        """A :class:`~voicehost.ToolCall` (named, with JSON arguments) comes before its
        response's :class:`~voicehost.ResponseDone`; ``send_tool_result`` with ``respond`` is
        accepted and the model answers."""
        if tool_call_trigger is None:
            pytest.skip("no tool_call_trigger fixture")
        async with self._live(provider, config, greet=False) as (session, reader):
            await tool_call_trigger()
            await reader.wait_for(
                lambda: reader.since(0, ToolCall) and reader.since(0, ResponseDone),
                self.response_within_s,
                "a tool call",
            )
            [call] = reader.since(0, ToolCall)
            assert call.call_id and call.name
            start = len(reader.events)
            await bounded(
                session.send_tool_result(call.call_id, '{"ok": true}', respond=True),
                5.0,
                "send_tool_result()",
            )
            await reader.wait_for(
                lambda: reader.since(start, ResponseDone),
                self.response_within_s,
                "the answer after a tool result",
            )
            assert not reader.since(start, ConversationError)


async def _drain(session: ConversationSession) -> list[ConversationEvent]:
    return [event async for event in session.events()]
