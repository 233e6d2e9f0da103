"""Call records: written and read back in order, never blocking the loop, durable per turn."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from voicehost.errors import ConfigError
from voicehost.records import CallStore, read_call, read_calls
from voicehost.records.cli import records_path

SID = "CA" + "a" * 32
STREAM = "MZ" + "b" * 32


async def test_call_and_turns_read_back_in_order_with_times(tmp_path):
    store = CallStore(tmp_path / "calls.db")
    try:
        store.start_call(SID, stream_sid=STREAM, from_number="+15550001", to_number="+15550002")
        store.add_turn(SID, "bot", "greeting", "Hello.", 12)
        store.add_turn(SID, "caller", "final", "what are your hours", 2300)
        store.add_turn(SID, "bot", "reply", "Nine to five.", 2450)
        store.add_turn(SID, "event", "barge_in", "", 3100)
        store.add_turn(SID, "event", "dtmf", "5", 4000)
        store.end_call(SID, "stop")
        await store.flush()
    finally:
        await store.aclose()
    call = read_call(tmp_path / "calls.db", SID)
    assert call is not None
    assert (call["call_sid"], call["stream_sid"], call["from"], call["to"]) == (
        SID,
        STREAM,
        "+15550001",
        "+15550002",
    )
    assert call["end_reason"] == "stop"
    assert call["started_at"] <= call["ended_at"] and call["duration_ms"] >= 0
    assert [(t["seq"], t["role"], t["kind"], t["text"], t["at_ms"]) for t in call["turns"]] == [
        (1, "bot", "greeting", "Hello.", 12),
        (2, "caller", "final", "what are your hours", 2300),
        (3, "bot", "reply", "Nine to five.", 2450),
        (4, "event", "barge_in", "", 3100),
        (5, "event", "dtmf", "5", 4000),
    ]


async def test_turns_of_interleaved_calls_stay_apart(tmp_path):
    store = CallStore(tmp_path / "calls.db")
    other = "CA" + "c" * 32
    store.start_call(SID)
    store.start_call(other)
    for i in range(3):
        store.add_turn(SID, "caller", "final", f"a{i}", i)
        store.add_turn(other, "caller", "final", f"b{i}", i)
    await store.aclose()
    assert [t["text"] for t in read_call(store.path, SID)["turns"]] == ["a0", "a1", "a2"]
    assert [t["text"] for t in read_call(store.path, other)["turns"]] == ["b0", "b1", "b2"]
    listed = read_calls(store.path)
    assert {c["call_sid"]: c["turn_count"] for c in listed} == {SID: 3, other: 3}
    assert listed[0]["ended_at"] is None


async def test_writes_do_not_block_the_event_loop_while_the_database_is_locked(tmp_path):
    store = CallStore(tmp_path / "calls.db")
    store.start_call(SID)
    await store.flush()
    locker = sqlite3.connect(tmp_path / "calls.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # the writer thread now waits for this lock
    try:
        written = store.add_turn(SID, "caller", "final", "hello", 10)  # returns at once
        await asyncio.sleep(0)  # the loop keeps running
        assert not written.done()
    finally:
        locker.execute("COMMIT")
        locker.close()
    await asyncio.wrap_future(written)
    await store.aclose()
    assert [t["text"] for t in read_call(store.path, SID)["turns"]] == ["hello"]


def test_unknown_role_or_kind_is_refused_before_queueing(tmp_path):
    store = CallStore(tmp_path / "calls.db")
    try:
        with pytest.raises(ValueError, match="turn kind"):
            store.add_turn(SID, "caller", "shout", "x", 1)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="turn role"):
            store.add_turn(SID, "robot", "final", "x", 1)  # type: ignore[arg-type]
    finally:
        store.close()


def test_crash_mid_call_leaves_finished_turns_stored(tmp_path):
    db = tmp_path / "calls.db"
    script = textwrap.dedent(
        f"""
        import os
        from voicehost.records import CallStore
        store = CallStore({str(db)!r})
        store.start_call({SID!r}, stream_sid={STREAM!r})
        store.add_turn({SID!r}, "bot", "greeting", "Hello.", 5)
        store.add_turn({SID!r}, "caller", "final", "what are your hours", 1800).result()
        os._exit(9)  # the server dies mid-call: no close, no end_call
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == 9, done.stderr.decode()
    call = read_call(db, SID)
    assert call is not None and call["ended_at"] is None
    assert [t["text"] for t in call["turns"]] == ["Hello.", "what are your hours"]
    # Restarted, the server appends to the same call and the order holds.
    store = CallStore(db)
    store.add_turn(SID, "bot", "reply", "Nine to five.", 2000)
    store.end_call(SID, "stop")
    store.close()
    call = read_call(db, SID)
    assert [t["seq"] for t in call["turns"]] == [1, 2, 3]
    assert call["end_reason"] == "stop"


def test_missing_or_foreign_database_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no call records"):
        read_calls(tmp_path / "nope.db")
    foreign = tmp_path / "other.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE x (y)")
    conn.close()
    with pytest.raises(ConfigError, match="not a voicehost call record database"):
        read_call(foreign, SID)
    with pytest.raises(ConfigError, match="cannot open"):
        CallStore(tmp_path / "no-such-dir" / "calls.db")


def test_records_path_from_the_config_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert str(records_path(None)) == "voicehost.db"
    config = tmp_path / "plugins.toml"
    config.write_text('[records]\npath = "/x/y.db"\n')
    assert str(records_path(str(config))) == "/x/y.db"
    config.write_text("[records]\npath = 3\n")
    with pytest.raises(ConfigError, match=r"\[records\] path: must be a valid string, not 3"):
        records_path(str(config))
