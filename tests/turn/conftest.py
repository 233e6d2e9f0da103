"""Fixtures for the end-of-turn detector tests: ``turn_cuts`` importable, one Smart Turn
detector per session (the model loads once per process)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def smart_turn_config():
    from voicehost_smart_turn import SmartTurnConfig, SmartTurnProvider

    config = SmartTurnConfig()
    SmartTurnProvider().preload(config)
    return config
