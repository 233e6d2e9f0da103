"""The conformance kit against the ``openai`` STT plugin (Realtime transcription), talking
to the local OpenAI Realtime fake (tests/fakes/openai_realtime.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
from fakes.openai_realtime import FakeOpenAIRealtime
from fakes.stt_audio import utterance

from voicehost.testing.conformance import TranscriptionConformance, config_from_table
from voicehost_openai_stt import OpenAISTTConfig, OpenAITranscriptionProvider

CLIP = utterance(2, 800)
WORDS = "thank you very much goodbye"
#: Resilience knobs small enough for tests (the defaults back off for seconds).
FAST: dict[str, Any] = {
    "reconnect_base_delay_s": 0.05,
    "reconnect_max_delay_s": 0.2,
    "connect_timeout_s": 5.0,
    "send_timeout_s": 2.0,
    "close_timeout_s": 2.0,
}


@pytest.fixture
async def realtime() -> AsyncIterator[FakeOpenAIRealtime]:
    async with FakeOpenAIRealtime(api_key="sk-test") as fake:
        fake.utterances.add(CLIP, WORDS)
        yield fake


class TestOpenAISTT(TranscriptionConformance):
    clip = CLIP
    clip_words = WORDS
    config_table: ClassVar[dict[str, Any]] = {"api_key": "sk-test", **FAST}

    @pytest.fixture
    async def provider(self) -> AsyncIterator[OpenAITranscriptionProvider]:
        provider = OpenAITranscriptionProvider()
        yield provider
        await provider.aclose()  # its SDK clients, on this test's event loop

    @pytest.fixture
    def config(
        self, provider: OpenAITranscriptionProvider, realtime: FakeOpenAIRealtime
    ) -> OpenAISTTConfig:
        return config_from_table(provider, {**self.config_table, "base_url": realtime.base_url})

    @pytest.fixture
    def refused_config(
        self, provider: OpenAITranscriptionProvider, refusing_url: str
    ) -> OpenAISTTConfig:
        return config_from_table(provider, {**self.config_table, "base_url": refusing_url})

    @pytest.fixture
    def stalled_config(
        self, provider: OpenAITranscriptionProvider, stalled_url: str
    ) -> OpenAISTTConfig:
        return config_from_table(provider, {**self.config_table, "base_url": stalled_url})
