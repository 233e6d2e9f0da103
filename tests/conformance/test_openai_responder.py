"""The conformance kit against the ``openai`` responder, answering through the fake Chat
Completions server on 127.0.0.1: the fake model echoes the caller, presses back a key press,
and says goodbye and calls ``hangup`` when the caller says goodbye."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fakes.openai_chat import ChatPlan, FakeOpenAIChat, ToolCallPlan

from voicehost.testing.conformance import ResponderConformance, config_from_table
from voicehost_openai_responder import OpenAIResponderConfig, OpenAIResponderProvider


def fake_model(body: dict[str, Any]) -> ChatPlan:
    """The fake model's answer to the last message of ``body``."""
    last = body["messages"][-1]
    if last["role"] == "tool":  # after a tool result
        return ChatPlan(text=("Done.",))
    said = last["content"]
    if "goodbye" in said.lower():
        return ChatPlan(
            text=("Goodbye!",), tool_calls=(ToolCallPlan("hangup", '{"reason": "bye"}'),)
        )
    if said.startswith("[pressed"):
        return ChatPlan(text=(f"You {said.strip('[]')}.",))
    return ChatPlan(text=("You said: ", f"{said}."))


@pytest.fixture
async def chat_model() -> AsyncIterator[FakeOpenAIChat]:
    async with FakeOpenAIChat(api_key="sk-test") as fake:
        fake.answer = fake_model
        yield fake


class TestOpenAIResponder(ResponderConformance):
    transcript = "what are your opening hours"
    hangup_transcript = "ok, goodbye"
    dtmf_keys = "12"

    @pytest.fixture
    def provider(self) -> OpenAIResponderProvider:
        return OpenAIResponderProvider()

    @pytest.fixture
    def config(
        self, provider: OpenAIResponderProvider, chat_model: FakeOpenAIChat
    ) -> OpenAIResponderConfig:
        table = {"api_key": "sk-test", "base_url": chat_model.base_url, "greeting": "Hello!"}
        return config_from_table(provider, table)


class TestOpenAIResponderUnreachable(TestOpenAIResponder):
    """Nothing listens at ``base_url``: each turn is answered with the apology (text), after
    one retry; there is no hang-up to check."""

    hangup_transcript = None
    dtmf_keys = "1"

    @pytest.fixture
    def config(self, provider: OpenAIResponderProvider, refusing_url: str) -> OpenAIResponderConfig:
        table = {"api_key": "sk-test", "base_url": f"{refusing_url}/v1", "timeout_s": 5}
        return config_from_table(provider, table)
