"""Fixtures for the cloud TTS plugin tests: the vendor fakes and configs pointing at them.

The fakes live in ``tests/fakes/`` (shared with the STT tests) and are imported as the
``fakes`` package, so ``tests/`` is put on ``sys.path`` here (pytest runs with
``--import-mode=importlib``, which does not do it); so is ``tests/tts/`` for ``tts_helpers``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

for _path in (Path(__file__).resolve().parents[1], Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from fakes.elevenlabs import FakeElevenLabs  # noqa: E402
from fakes.openai_tts import FakeOpenAITTS  # noqa: E402

from voicehost_elevenlabs_tts import ElevenLabsConfig  # noqa: E402
from voicehost_openai_tts import OpenAITTSConfig  # noqa: E402


@pytest.fixture
async def openai_fake() -> AsyncIterator[FakeOpenAITTS]:
    """A running fake ``/v1/audio/speech`` accepting key ``sk-test``."""
    async with FakeOpenAITTS(api_key="sk-test") as fake:
        yield fake


@pytest.fixture
def openai_config(openai_fake: FakeOpenAITTS) -> OpenAITTSConfig:
    """The ``openai`` provider's parsed config, pointed at the fake (other keys default)."""
    return OpenAITTSConfig(api_key="sk-test", base_url=openai_fake.base_url)


@pytest.fixture
async def elevenlabs_fake() -> AsyncIterator[FakeElevenLabs]:
    """A running fake ElevenLabs API accepting key ``xi-test`` and voice ``voice123``."""
    async with FakeElevenLabs(api_key="xi-test") as fake:
        yield fake


@pytest.fixture
def elevenlabs_config(elevenlabs_fake: FakeElevenLabs) -> ElevenLabsConfig:
    """The ``elevenlabs`` provider's parsed config (HTTP mode), pointed at the fake."""
    return ElevenLabsConfig(
        api_key="xi-test", voice_id="voice123", base_url=elevenlabs_fake.base_url
    )
