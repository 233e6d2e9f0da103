"""Call records in a real PostgreSQL: the same writes and reads as SQLite, a versioned
schema migrated once, readers (``voicehost calls``, ``/api/calls``) on the URL, and writes
that wait out an outage instead of being lost."""

from __future__ import annotations

import json
import logging

import pytest
from click.testing import CliRunner

from voicehost.cli import cli
from voicehost.errors import ConfigError
from voicehost.records import read_call, read_calls
from voicehost.records.pg_schema import SCHEMA_VERSION, migrate
from voicehost.records.pg_store import PgCallStore
from voicehost.records.settings import RecordsSettings, open_store
from voicehost.records.stats import call_stats
from voicehost.records.timings import TurnTimings

SID = "CA" + "a" * 32


async def test_writes_read_back_in_the_sqlite_shapes(pg_url, tmp_path):
    pg = open_store(RecordsSettings(url=pg_url))
    sqlite = open_store(RecordsSettings(path=str(tmp_path / "calls.db")))
    assert isinstance(pg, PgCallStore)
    for store in (pg, sqlite):
        store.record_event(
            SID,
            "ringing",
            direction="inbound",
            from_number="+15550001111",
            to_number="+15550002222",
            at=1_700_000_000.0,
        )
        store.start_call(SID, stream_sid="MZ1", from_number="+15550001111")
        seq = store.add_turn(SID, "caller", "final", "hello", 900)
        store.set_turn_timings(SID, seq, TurnTimings(800, 850, 900, 1000))
        store.add_turn(SID, "bot", "reply", "hi there", 1000)
        store.record_event(SID, "answered", answered_by="human")
        store.end_call(SID, "bot-hangup")
        await store.flush()
    got, want = pg.get_call(SID), sqlite.get_call(SID)
    assert got is not None and want is not None
    for data in (got, want):
        data.pop("ended_at")
        data.pop("duration_ms")
        for event in data["events"]:
            event.pop("at")
    assert got == want
    assert [c["turn_count"] for c in pg.list_calls()] == [2]
    assert read_calls(pg_url)[0]["call_sid"] == SID
    stats = call_stats(pg_url)
    assert stats["calls"] == 1 and stats["answered_turns"] == 1
    assert stats == call_stats(tmp_path / "calls.db")
    await pg.aclose()
    await sqlite.aclose()


def test_the_schema_is_versioned_and_migrated_once(pg_url):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert migrate(conn) == 0
        assert migrate(conn) == SCHEMA_VERSION
        versions = conn.execute("SELECT version FROM voicehost_schema").fetchall()
        assert [v[0] for v in versions] == list(range(1, SCHEMA_VERSION + 1))
        conn.execute("INSERT INTO voicehost_schema VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(ConfigError, match="schema version"):
        PgCallStore(pg_url)


def test_an_unreachable_database_is_a_clear_error_naming_it():
    url = "postgresql://voicehost:secret@127.0.0.1:1/nowhere"
    with pytest.raises(ConfigError) as error:
        PgCallStore(url)
    assert "127.0.0.1:1/nowhere" in str(error.value) and "secret" not in str(error.value)


def test_calls_cli_reads_postgres_from_the_config(pg_url, tmp_path):
    store = PgCallStore(pg_url)
    store.start_call(SID, from_number="+15550001111")
    store.add_turn(SID, "caller", "final", "hello", 10)
    store.close()
    config = tmp_path / "plugins.toml"
    config.write_text(f'[records]\nurl = "{pg_url}"\n')
    listed = CliRunner().invoke(cli, ["calls", "list", "--json", "--config", str(config)])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)[0]["call_sid"] == SID
    shown = CliRunner().invoke(cli, ["calls", "show", SID, "--db", pg_url])
    assert shown.exit_code == 0 and "hello" in shown.output


async def test_writes_wait_out_an_outage_and_nothing_is_lost(own_postgres, caplog):
    url = own_postgres.create_database("outage")
    store = PgCallStore(url)
    store.start_call(SID)
    await store.flush()
    own_postgres.stop()
    caplog.set_level(logging.WARNING)
    futures = [store.add_turn(SID, "caller", "final", f"turn {n}", n) for n in range(5)]
    store.end_call(SID, "caller-hangup")
    assert store.pending >= 1  # queued, not written, not dropped
    own_postgres.start()
    await store.flush()
    assert [f.result() for f in futures] == [1, 2, 3, 4, 5]
    call = read_call(url, SID)
    assert call is not None and call["end_reason"] == "caller-hangup"
    assert [t["text"] for t in call["turns"]] == [f"turn {n}" for n in range(5)]
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("voicehost.records")]
    assert any("unreachable" in line and SID in line for line in lines)
    assert any("is back" in line for line in lines)
    assert all(r.exc_info is None for r in caplog.records if r.name.startswith("voicehost"))
    await store.aclose()


def test_what_cannot_be_written_by_close_is_logged_with_the_call_sid(own_postgres, caplog):
    url = own_postgres.create_database("lost")
    store = PgCallStore(url, close_timeout_s=0.5)
    own_postgres.stop()
    future = store.add_turn(SID, "caller", "final", "never stored", 5)
    store.close()
    assert future.exception() is not None
    assert any("NOT stored" in r.getMessage() and SID in r.getMessage() for r in caplog.records)
