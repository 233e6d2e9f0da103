"""The conformance kit against the ``openai-realtime`` conversation plugin, talking to the
local fake Realtime conversation server (tests/fakes/openai_realtime_conversation.py), which
speaks the greeting and every later answer by itself."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import pytest
from fakes.openai_realtime_conversation import FakeRealtimeConversation

from voicehost.testing.conformance import ConversationConformance, config_from_table
from voicehost_openai_realtime import OpenAIRealtimeConfig, OpenAIRealtimeProvider

#: 300 ms of μ-law the fake "says".
SPEECH = bytes(range(0, 256, 2)) * 19


@pytest.fixture
async def vendor() -> AsyncIterator[FakeRealtimeConversation]:
    async with FakeRealtimeConversation(api_key="sk-test") as fake:
        fake.greeting_audio = SPEECH
        fake.reply_audio = SPEECH
        yield fake
        assert fake.violations == []


class TestOpenAIRealtime(ConversationConformance):
    config_table: ClassVar[dict[str, Any]] = {
        "api_key": "sk-test",
        "greeting": "Thanks for calling!",
        "connect_timeout_s": 5.0,
    }

    @pytest.fixture
    async def provider(self) -> AsyncIterator[OpenAIRealtimeProvider]:
        provider = OpenAIRealtimeProvider()
        yield provider
        await provider.aclose()  # its SDK clients, on this test's event loop

    @pytest.fixture
    def config(
        self, provider: OpenAIRealtimeProvider, vendor: FakeRealtimeConversation
    ) -> OpenAIRealtimeConfig:
        return config_from_table(provider, {**self.config_table, "base_url": vendor.base_url})

    @pytest.fixture
    def refused_config(
        self, provider: OpenAIRealtimeProvider, refusing_url: str
    ) -> OpenAIRealtimeConfig:
        return config_from_table(provider, {**self.config_table, "base_url": refusing_url + "/v1"})

    @pytest.fixture
    def tool_call_trigger(self, vendor: FakeRealtimeConversation) -> Callable[[], Awaitable[Any]]:
        return lambda: vendor.function_call("hangup", {"reason": "done"})
