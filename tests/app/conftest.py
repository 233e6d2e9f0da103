"""Shared fixtures for the application tests (responders, records, conversation, simulate)."""

from __future__ import annotations

import pytest

from voicehost.records import CallStore

SID = "CA" + "d" * 32


@pytest.fixture
def recorded_db(tmp_path):
    """A records database holding one finished call of three turns (``SID``)."""
    store = CallStore(tmp_path / "calls.db")
    store.start_call(SID, stream_sid="MZ" + "e" * 32, from_number="+15551", to_number="+15552")
    store.add_turn(SID, "bot", "greeting", "Hello.", 20)
    store.add_turn(SID, "caller", "final", "what are your hours", 2100)
    store.add_turn(SID, "bot", "reply", "Nine to five.", 2300)
    store.end_call(SID, "stop")
    store.close()
    return store.path
