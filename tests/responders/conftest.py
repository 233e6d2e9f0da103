"""Fixtures for the responder plugin tests: the fake Chat Completions server and responders
pointed at it.

The fakes live in ``tests/fakes/`` and are imported as the ``fakes`` package, so ``tests/``
is put on ``sys.path`` here (pytest runs with ``--import-mode=importlib``, which does not do
it); so is ``tests/responders/`` for ``responder_helpers``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

for _path in (Path(__file__).resolve().parents[1], Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from fakes.openai_chat import FakeOpenAIChat  # noqa: E402
from responder_helpers import CALL_SID, TODAY  # noqa: E402

from voicehost import CallContext, ConversationTurn  # noqa: E402
from voicehost_openai_responder import OpenAIResponder, OpenAIResponderConfig  # noqa: E402


@pytest.fixture
async def chat_fake() -> AsyncIterator[FakeOpenAIChat]:
    """A running fake ``/v1/chat/completions`` accepting key ``sk-test``, model
    ``gpt-4o-mini``."""
    async with FakeOpenAIChat(api_key="sk-test") as fake:
        yield fake


@pytest.fixture
async def make_responder(
    chat_fake: FakeOpenAIChat,
) -> AsyncIterator[Callable[..., OpenAIResponder]]:
    """``make_responder(**config keys)``: an :class:`OpenAIResponder` on the fake (key
    ``sk-test``, date :data:`TODAY`, a 0 – 10 ms retry pause); closed after the test."""
    made: list[OpenAIResponder] = []

    def make(**keys: Any) -> OpenAIResponder:
        table = {"api_key": "sk-test", "base_url": chat_fake.base_url, **keys}
        responder = OpenAIResponder(
            OpenAIResponderConfig.model_validate(table), today=lambda: TODAY
        )
        responder.retry_backoff_s = (0.0, 0.01)  # type: ignore[misc]
        made.append(responder)
        return responder

    yield make
    for responder in made:
        await responder.aclose()


@pytest.fixture
def call() -> CallContext:
    """An inbound call with two turns of history."""
    return CallContext(
        call_sid=CALL_SID,
        stream_sid="MZ" + "ab" * 16,
        from_number="+15550100",
        to_number="+15550199",
        direction="inbound",
        history=[
            ConversationTurn("bot", "Hello, how can I help?"),
            ConversationTurn("caller", "I have a question."),
        ],
    )
