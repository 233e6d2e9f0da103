"""The conformance kit against the test fakes of :mod:`voicehost.testing.providers`: the kit
must pass a provider that does everything right (the fakes are what the host tests use)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from voicehost.testing.conformance import (
    SpeechConformance,
    TranscriptionConformance,
    config_from_table,
)
from voicehost.testing.providers import (
    FakePcm16TranscriptionProvider,
    FakeSpeechProvider,
    FakeTranscriptionProvider,
    tone,
)

CLIP = tone(1.0)  # 50 frames of a 440 Hz tone: "speech" to the fake STT


class TestFakeSTT(TranscriptionConformance):
    """The scripted fake: a final after 50 frames of sound (the clip's last frame)."""

    clip = CLIP
    clip_words = "hello there"
    config_table: ClassVar[dict[str, Any]] = {
        "final_after_frames": 50,
        "final_text": "Hello, there!",
    }

    @pytest.fixture
    def provider(self) -> FakeTranscriptionProvider:
        return FakeTranscriptionProvider()

    @pytest.fixture
    def refused_config(self, provider: FakeTranscriptionProvider):
        return config_from_table(provider, {"fail_connect": True})

    @pytest.fixture
    def stalled_config(self, provider: FakeTranscriptionProvider):
        return config_from_table(provider, {"connect_delay_s": 3600})


class TestFakeSTTFlushedByClose(TestFakeSTT):
    """The fake that reports its final only when ``close()`` flushes it."""

    config_table: ClassVar[dict[str, Any]] = {"final_on_close": "well hello there"}


class TestFakePcm16STT(TestFakeSTT):
    """The PCM16 16 kHz fake: the kit converts the μ-law clip as the host does (the
    resampler hands over audio in batches: 16 ``send_audio`` calls for the 50 frames)."""

    config_table: ClassVar[dict[str, Any]] = {"final_after_frames": 10, "final_text": "hello there"}

    @pytest.fixture
    def provider(self) -> FakePcm16TranscriptionProvider:
        return FakePcm16TranscriptionProvider()


class TestFakeTTS(SpeechConformance):
    """The tone fake, μ-law 8 kHz in uneven chunks (20 ms of tone per character)."""

    expected_seconds = (0.5, 2.0)  # SpeechConformance.text is 52 characters

    @pytest.fixture
    def provider(self) -> FakeSpeechProvider:
        return FakeSpeechProvider()

    @pytest.fixture
    def failing_config(self, provider: FakeSpeechProvider):
        return config_from_table(provider, {"fail_after_chunks": 2})


class TestFakeTTSPcm16(TestFakeTTS):
    """The tone fake in PCM16 24 kHz, chunks of odd byte counts (samples split)."""

    config_table: ClassVar[dict[str, Any]] = {"format": "pcm16", "chunk_delay_s": 0.001}
