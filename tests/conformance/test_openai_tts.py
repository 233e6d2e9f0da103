"""The conformance kit against the ``openai`` TTS plugin (PCM16 24 kHz, streamed), talking
to the local ``/v1/audio/speech`` fake (tests/fakes/openai_tts.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fakes.openai_tts import FakeOpenAITTS

from voicehost.testing.conformance import SpeechConformance, config_from_table
from voicehost_openai_tts import OpenAISpeechProvider, OpenAITTSConfig


@pytest.fixture
async def speech_api() -> AsyncIterator[FakeOpenAITTS]:
    """The fake: every accepted request streams 1 s of a 440 Hz tone."""
    async with FakeOpenAITTS(api_key="sk-test") as fake:
        yield fake


class TestOpenAITTS(SpeechConformance):
    expected_seconds = (0.9, 1.1)  # the fake's body, whatever the text

    @pytest.fixture
    async def provider(self) -> AsyncIterator[OpenAISpeechProvider]:
        provider = OpenAISpeechProvider()
        yield provider
        await provider.aclose()  # its SDK clients, on this test's event loop

    @pytest.fixture
    def config(self, provider: OpenAISpeechProvider, speech_api: FakeOpenAITTS) -> OpenAITTSConfig:
        return config_from_table(provider, {"api_key": "sk-test", "base_url": speech_api.base_url})

    @pytest.fixture
    def failing_config(
        self, provider: OpenAISpeechProvider, speech_api: FakeOpenAITTS
    ) -> OpenAITTSConfig:
        """A key the vendor refuses (HTTP 401)."""
        return config_from_table(provider, {"api_key": "sk-wrong", "base_url": speech_api.base_url})


class TestOpenAITTSUnreachable(TestOpenAITTS):
    """The vendor failure is a refused connection instead."""

    @pytest.fixture
    def failing_config(self, provider: OpenAISpeechProvider, refusing_url: str) -> OpenAITTSConfig:
        return config_from_table(
            provider, {"api_key": "sk-test", "base_url": f"{refusing_url}/v1", "max_retries": 0}
        )
