"""The conformance kit against the ``deepgram`` STT plugin, talking to the local Deepgram
fake (tests/fakes/deepgram.py), which recognises exactly the bytes of known clips."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
from fakes.deepgram import FakeDeepgram
from fakes.stt_audio import utterance

from voicehost.testing.conformance import TranscriptionConformance, config_from_table
from voicehost_deepgram_stt import DeepgramSTTConfig, DeepgramTranscriptionProvider

CLIP = utterance(1, 600)
WORDS = "hello I would like to book a table"
#: Resilience knobs small enough for tests (the defaults back off for seconds).
FAST: dict[str, Any] = {
    "reconnect_base_delay_s": 0.05,
    "reconnect_max_delay_s": 0.2,
    "connect_timeout_s": 5.0,
    "send_timeout_s": 2.0,
    "close_timeout_s": 2.0,
}


@pytest.fixture
async def deepgram() -> AsyncIterator[FakeDeepgram]:
    async with FakeDeepgram(api_key="dg-test") as fake:
        fake.utterances.add(CLIP, WORDS)
        yield fake


class TestDeepgramSTT(TranscriptionConformance):
    clip = CLIP
    clip_words = WORDS
    config_table: ClassVar[dict[str, Any]] = {"api_key": "dg-test", **FAST}

    @pytest.fixture
    def provider(self) -> DeepgramTranscriptionProvider:
        return DeepgramTranscriptionProvider()

    @pytest.fixture
    def config(
        self, provider: DeepgramTranscriptionProvider, deepgram: FakeDeepgram
    ) -> DeepgramSTTConfig:
        return config_from_table(provider, {**self.config_table, "base_url": deepgram.base_url})

    @pytest.fixture
    def refused_config(
        self, provider: DeepgramTranscriptionProvider, refusing_url: str
    ) -> DeepgramSTTConfig:
        return config_from_table(provider, {**self.config_table, "base_url": refusing_url})

    @pytest.fixture
    def stalled_config(
        self, provider: DeepgramTranscriptionProvider, stalled_url: str
    ) -> DeepgramSTTConfig:
        return config_from_table(provider, {**self.config_table, "base_url": stalled_url})
