"""Shared fixtures for the offline-model tests (Piper TTS, Whisper STT).

Models load once per test session: the plugins keep one loaded Piper voice and one Whisper
model per process, and the session-scoped fixtures below warm them and synthesize the caller
utterances once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from offline_helpers import (
    CALLER_SENTENCES,
    MONOLOGUE,
    Recorder,
    synthesize_ulaw,
    trim_silence,
)


@pytest.fixture(scope="session")
def caller_utterances() -> list[tuple[str, bytes]]:
    """(text, μ-law 8 kHz audio) for each of :data:`CALLER_SENTENCES`, synthesized once."""
    return [(text, synthesize_ulaw(text)) for text in CALLER_SENTENCES]


@pytest.fixture(scope="session")
def monologue_audio() -> list[bytes]:
    """μ-law 8 kHz audio of each sentence of :data:`MONOLOGUE`, without Piper's leading and
    trailing silence (so the pauses a test puts between them are the only ones)."""
    return [trim_silence(synthesize_ulaw(text)) for text in MONOLOGUE]


@pytest.fixture(scope="session")
def whisper_loaded() -> None:
    """Load the default Whisper model and Silero VAD once for the session."""
    from voicehost_whisper_stt import WhisperConfig
    from voicehost_whisper_stt.engine import get_engine
    from voicehost_whisper_stt.vad import preload

    preload()
    get_engine(WhisperConfig()).load()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
