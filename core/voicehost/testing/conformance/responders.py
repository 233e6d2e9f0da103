"""The responder conformance tests. See :mod:`voicehost.testing.conformance`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import attrs
import pytest

from voicehost.config_model import ProviderConfig
from voicehost.contracts import (
    Action,
    CallContext,
    ConversationTurn,
    HangUp,
    Responder,
    ResponderProvider,
    ToolUse,
    Transfer,
)
from voicehost.testing.conformance.base import CALL_SID, STREAM_SID, _ProviderChecks
from voicehost.testing.conformance.support import (
    bounded,
    collect,
)


class ResponderConformance(_ProviderChecks):
    """The responder contract (:class:`~voicehost.ResponderProvider`), as tests.

    A complete test module::

        import pytest

        from voicehost.testing.conformance import ResponderConformance
        from voicehost_mybot import MyBotProvider


        class TestMyBot(ResponderConformance):
            config_table = {"greeting": "Hi!"}
            transcript = "what are your opening hours"
            hangup_transcript = "thanks, goodbye"
            dtmf_keys = "1"               # a key the bot answers (None: it ignores keys)

            @pytest.fixture
            def provider(self):
                return MyBotProvider()

    Fixtures to override: ``provider`` (required), ``config`` (default: :attr:`config_table`
    parsed), ``call`` (the :class:`~voicehost.CallContext` handed to the responder; default:
    a call with two turns of history). The responder is made with ``provider.create(config)``
    per test and closed with ``aclose()`` after it.
    """

    provider_type: ClassVar[type] = ResponderProvider
    #: A caller's turn the responder answers with text.
    transcript: ClassVar[str] = "hello"
    #: A caller's turn the responder answers by hanging up; None skips that test.
    hangup_transcript: ClassVar[str | None] = None
    #: Keys (one ``dtmf`` call each) the responder answers with something; None means it
    #: answers no key press (only the item types are checked then).
    dtmf_keys: ClassVar[str | None] = None
    #: Bound of one reply or greeting, s.
    reply_within_s: ClassVar[float] = 30.0

    @pytest.fixture
    def call(self) -> CallContext:
        """The call the responder answers (two turns of history)."""
        return CallContext(
            call_sid=CALL_SID,
            stream_sid=STREAM_SID,
            from_number="+15550100",
            to_number="+15550199",
            history=[
                ConversationTurn("bot", "Hello, how can I help?"),
                ConversationTurn("caller", "I have a question."),
            ],
        )

    @contextlib.asynccontextmanager
    async def _responder(self, provider: Any, config: ProviderConfig) -> AsyncIterator[Responder]:
        responder = provider.create(config)
        assert isinstance(responder, Responder), (
            f"create() returned a {type(responder).__name__}, not a Responder"
        )
        try:
            yield responder
        finally:
            await bounded(responder.aclose(), self.reply_within_s, "aclose()")

    async def _items(self, stream: Any, what: str) -> list[Any]:
        assert hasattr(stream, "__anext__") and hasattr(stream, "__aiter__"), (
            f"{what} must return an async iterator, got {type(stream).__name__}"
        )
        return await collect(stream, self.reply_within_s, what)

    @pytest.mark.asyncio
    async def test_reply_streams_text(
        self, provider: Any, config: ProviderConfig, call: CallContext
    ) -> None:
        """``reply(call, transcript)`` is an async iterator of ``str`` pieces, actions
        (:class:`~voicehost.SendDtmf`; a :class:`~voicehost.HangUp` or
        :class:`~voicehost.Transfer` only last) and :class:`~voicehost.ToolUse` items, with
        some text for :attr:`transcript`."""
        async with self._responder(provider, config) as responder:
            items = await self._items(responder.reply(call, self.transcript), "reply()")
        self._check_items(items, "reply()")
        text = "".join(item for item in items if isinstance(item, str))
        assert text.strip(), f"reply() to {self.transcript!r} yielded no text: {items!r}"

    @pytest.mark.asyncio
    async def test_greeting_streams_text(
        self, provider: Any, config: ProviderConfig, call: CallContext
    ) -> None:
        """``greeting(call)`` is an async iterator of ``str`` pieces (maybe none)."""
        fresh = attrs.evolve(call, history=[])
        async with self._responder(provider, config) as responder:
            items = await self._items(responder.greeting(fresh), "greeting()")
        wrong = [item for item in items if not isinstance(item, str)]
        assert not wrong, f"greeting() yielded {wrong!r}: only str pieces"

    @pytest.mark.asyncio
    async def test_hang_up_marker_ends_the_reply(
        self, provider: Any, config: ProviderConfig, call: CallContext
    ) -> None:
        """The reply to :attr:`hangup_transcript` ends with exactly one
        :class:`~voicehost.HangUp` (with a reason), nothing after it."""
        if self.hangup_transcript is None:
            pytest.skip("no `hangup_transcript` given (a turn the responder hangs up on)")
        async with self._responder(provider, config) as responder:
            items = await self._items(responder.reply(call, self.hangup_transcript), "reply()")
        assert items and isinstance(items[-1], HangUp), (
            f"the reply to {self.hangup_transcript!r} does not end with a HangUp: {items!r}"
        )
        self._check_items(items, "reply()")
        reason = items[-1].reason
        assert isinstance(reason, str) and reason, "HangUp.reason must be a non-empty str"

    @pytest.mark.asyncio
    async def test_dtmf_streams_reply_items(
        self, provider: Any, config: ProviderConfig, call: CallContext
    ) -> None:
        """``dtmf(call, key)`` is an async iterator of reply items like ``reply()`` (the
        default yields nothing), called once per key of :attr:`dtmf_keys` (``"1"`` when
        None); with :attr:`dtmf_keys` given, the keys are answered with something. It
        leaves ``call.history`` alone."""
        keys = self.dtmf_keys or "1"
        before = list(call.history)
        answered: list[Any] = []
        async with self._responder(provider, config) as responder:
            for key in keys:
                items = await self._items(responder.dtmf(call, key), "dtmf()")
                self._check_items(items, "dtmf()")
                answered += items
        assert call.history == before, "dtmf() changed call.history"
        if self.dtmf_keys is not None:
            assert answered, f"dtmf() yielded nothing for the keys {self.dtmf_keys!r}"

    @staticmethod
    def _check_items(items: list[Any], what: str) -> None:
        """Only ``str`` pieces, actions and tool uses (each with string name, arguments and
        result); at most one HangUp/Transfer, and it is last."""
        wrong = [item for item in items if not isinstance(item, str | Action | ToolUse)]
        assert not wrong, (
            f"{what} yielded {wrong!r}: only str pieces, actions (HangUp, SendDtmf, Transfer) "
            "and ToolUse"
        )
        for use in (item for item in items if isinstance(item, ToolUse)):
            fields = (use.name, use.arguments, use.result, use.call_id)
            assert all(isinstance(field, str) for field in fields), (
                f"{what} yielded {use!r}: name, arguments, result and call_id must be str"
            )
        ends = [i for i, item in enumerate(items) if isinstance(item, HangUp | Transfer)]
        assert len(ends) <= 1, f"more than one HangUp/Transfer in a reply: {items!r}"
        assert not ends or ends[0] == len(items) - 1, (
            f"items after the {type(items[ends[0]]).__name__}: {items!r}"
        )

    @pytest.mark.asyncio
    async def test_reply_leaves_the_call_history_alone(
        self, provider: Any, config: ProviderConfig, call: CallContext
    ) -> None:
        """A reply reads ``call.history`` and never changes it (the host appends turns)."""
        before = list(call.history)
        async with self._responder(provider, config) as responder:
            await self._items(responder.reply(call, self.transcript), "reply()")
        assert call.history == before, "reply() changed call.history"

    @pytest.mark.asyncio
    async def test_aclose_is_idempotent(
        self, provider: Any, config: ProviderConfig, call: CallContext
    ) -> None:
        """``aclose()`` on a fresh responder, twice; and after a reply, twice."""
        fresh = provider.create(config)
        await bounded(fresh.aclose(), self.reply_within_s, "aclose() of an unused responder")
        await bounded(fresh.aclose(), self.reply_within_s, "a second aclose()")
        async with self._responder(provider, config) as used:
            await self._items(used.reply(call, self.transcript), "reply()")
            await bounded(used.aclose(), self.reply_within_s, "aclose() after a reply")
        # ... and the context closes it once more.
