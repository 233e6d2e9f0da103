"""The conformance kit against the ``elevenlabs`` TTS plugin (μ-law 8 kHz), in both modes,
talking to the local ElevenLabs fake (tests/fakes/elevenlabs.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
from fakes.elevenlabs import FakeElevenLabs

from voicehost.testing.conformance import SpeechConformance, config_from_table
from voicehost_elevenlabs_tts import ElevenLabsConfig, ElevenLabsSpeechProvider


@pytest.fixture
async def elevenlabs() -> AsyncIterator[FakeElevenLabs]:
    """The fake, accepting key ``xi-test`` and voice ``voice123``."""
    async with FakeElevenLabs(api_key="xi-test") as fake:
        yield fake


class TestElevenLabsHTTP(SpeechConformance):
    """HTTP mode: one streamed POST per text; the fake streams its known μ-law tone."""

    config_table: ClassVar[dict[str, Any]] = {"api_key": "xi-test", "voice_id": "voice123"}

    @pytest.fixture
    def provider(self) -> ElevenLabsSpeechProvider:
        return ElevenLabsSpeechProvider()

    @pytest.fixture
    def config(
        self, provider: ElevenLabsSpeechProvider, elevenlabs: FakeElevenLabs
    ) -> ElevenLabsConfig:
        return config_from_table(provider, {**self.config_table, "base_url": elevenlabs.base_url})

    @pytest.fixture
    def failing_config(
        self, provider: ElevenLabsSpeechProvider, refusing_url: str
    ) -> ElevenLabsConfig:
        """An API origin that refuses connections."""
        return config_from_table(provider, {**self.config_table, "base_url": refusing_url})


class TestElevenLabsWebSocket(TestElevenLabsHTTP):
    """WebSocket mode (``stream-input``): the fake generates 5 ms of tone a character."""

    config_table: ClassVar[dict[str, Any]] = {
        "api_key": "xi-test",
        "voice_id": "voice123",
        "mode": "websocket",
    }

    @pytest.fixture
    def failing_config(
        self, provider: ElevenLabsSpeechProvider, elevenlabs: FakeElevenLabs
    ) -> ElevenLabsConfig:
        """A key the vendor refuses."""
        table = {**self.config_table, "api_key": "xi-wrong"}
        return config_from_table(provider, {**table, "base_url": elevenlabs.base_url})
