"""Call lifecycle events in the call records: stored, read back, shown, served, and migrated in."""

from __future__ import annotations

import json
import sqlite3
import threading
import typing
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from voicehost.records import EVENT_NAMES, TURN_KINDS, CallStore, read_call, read_calls
from voicehost.records.api import add_call_routes
from voicehost.records.cli import calls
from voicehost.server.events import EventKind, event_from_status

SID = "CA" + "1" * 32
OTHER = "CA" + "2" * 32
STREAM = "MZ" + "3" * 32
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z

# The schema of the first version, as it shipped (before direction/answered_by/call_events).
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_sid    TEXT PRIMARY KEY,
    stream_sid  TEXT NOT NULL DEFAULT '',
    from_number TEXT NOT NULL DEFAULT '',
    to_number   TEXT NOT NULL DEFAULT '',
    started_at  TEXT NOT NULL,
    ended_at    TEXT,
    end_reason  TEXT
);
CREATE TABLE IF NOT EXISTS turns (
    call_sid TEXT NOT NULL REFERENCES calls(call_sid),
    seq      INTEGER NOT NULL,
    role     TEXT NOT NULL,
    kind     TEXT NOT NULL,
    text     TEXT NOT NULL DEFAULT '',
    at_ms    INTEGER NOT NULL,
    PRIMARY KEY (call_sid, seq)
);
CREATE INDEX IF NOT EXISTS calls_started ON calls(started_at);
"""


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


def outbound_call(db) -> None:
    """An outbound call answered by a person: events, then a stream with two turns, then the
    caller hangs up and Twilio's final status callback comes last."""
    store = CallStore(db)
    common = {"direction": "outbound-api", "from_number": "+15550001", "to_number": "+15550002"}
    store.record_event(SID, "initiated", at=T0, **common)
    store.record_event(SID, "ringing", at=T0 + 1.5, **common)
    store.record_event(SID, "answered", answered_by="human", at=T0 + 6.25, **common)
    store.start_call(SID, stream_sid=STREAM, started_at=iso(T0 + 7))
    store.add_turn(SID, "bot", "greeting", "Hello.", 20)
    store.add_turn(SID, "event", "send_dtmf", "1234#", 900)
    store.add_turn(SID, "event", "transfer", "+15550003333", 1500)
    store.end_call(SID, "transferred", ended_at=iso(T0 + 9))
    store.record_event(SID, "ended", reason="completed", at=T0 + 60, **common)
    store.close()


def test_events_are_stored_and_read_back_in_order(tmp_path):
    db = tmp_path / "calls.db"
    outbound_call(db)
    call = read_call(db, SID)
    assert call is not None
    assert call["direction"] == "outbound-api" and call["answered_by"] == "human"
    assert (call["from"], call["to"], call["stream_sid"]) == ("+15550001", "+15550002", STREAM)
    assert call["started_at"] == iso(T0)  # the first event, not the stream's start
    assert call["events"] == [
        {"seq": 1, "event": "initiated", "reason": "", "answered_by": "", "at": iso(T0)},
        {"seq": 2, "event": "ringing", "reason": "", "answered_by": "", "at": iso(T0 + 1.5)},
        {"seq": 3, "event": "answered", "reason": "", "answered_by": "human", "at": iso(T0 + 6.25)},
        {"seq": 4, "event": "ended", "reason": "completed", "answered_by": "", "at": iso(T0 + 60)},
    ]
    # The stream's end reason came first and wins over the later status callback.
    assert call["end_reason"] == "transferred" and call["ended_at"] == iso(T0 + 9)
    assert call["duration_ms"] == 9000
    assert [(t["kind"], t["text"]) for t in call["turns"]] == [
        ("greeting", "Hello."),
        ("send_dtmf", "1234#"),
        ("transfer", "+15550003333"),
    ]
    (listed,) = read_calls(db)
    assert listed["direction"] == "outbound-api" and listed["answered_by"] == "human"
    assert listed["turn_count"] == 3 and "events" not in listed and "turns" not in listed


@pytest.mark.parametrize("reason", ["busy", "no-answer", "failed", "canceled", "rejected"])
def test_a_call_that_never_streamed_is_still_recorded(tmp_path, reason):
    store = CallStore(tmp_path / "calls.db")
    store.record_event(
        SID, "ended", reason=reason, direction="inbound", from_number="+15559", at=T0
    )
    store.close()
    call = read_call(store.path, SID)
    assert call is not None
    assert (call["stream_sid"], call["from"], call["to"], call["direction"]) == (
        "",
        "+15559",
        "",
        "inbound",
    )
    assert call["started_at"] == call["ended_at"] == iso(T0) and call["duration_ms"] == 0
    assert call["end_reason"] == reason and call["turns"] == []
    assert [e["event"] for e in call["events"]] == ["ended"]
    assert read_calls(store.path)[0]["turn_count"] == 0


def test_first_end_reason_of_the_events_wins(tmp_path):
    store = CallStore(tmp_path / "calls.db")
    store.record_event(SID, "ended", reason="rejected", at=T0)
    store.record_event(SID, "ended", reason="busy", at=T0 + 2)
    store.close()
    call = read_call(store.path, SID)
    assert (call["end_reason"], call["ended_at"]) == ("rejected", iso(T0))
    assert [e["reason"] for e in call["events"]] == ["rejected", "busy"]  # both kept as events


def test_the_streams_end_reason_replaces_an_earlier_status_callback(tmp_path):
    store = CallStore(tmp_path / "calls.db")
    store.start_call(SID, stream_sid=STREAM, started_at=iso(T0))
    store.record_event(SID, "ended", reason="caller-hangup", at=T0 + 5)
    store.end_call(SID, "bot-hangup", ended_at=iso(T0 + 5.1))
    store.close()
    call = read_call(store.path, SID)
    assert (call["end_reason"], call["ended_at"]) == ("bot-hangup", iso(T0 + 5.1))
    assert [(e["event"], e["reason"]) for e in call["events"]] == [("ended", "caller-hangup")]


def test_a_known_call_keeps_what_it_knows(tmp_path):
    store = CallStore(tmp_path / "calls.db")
    store.start_call(SID, stream_sid=STREAM, from_number="+1555", started_at=iso(T0 + 5))
    # A later event fills only what the call lacks, and moves the start back when earlier.
    store.record_event(
        SID,
        "answered",
        answered_by="machine_end_beep",
        direction="inbound",
        from_number="+1999",
        to_number="+1777",
        at=T0 + 1,
    )
    store.record_event(SID, "ringing", direction="outbound-api", at=T0 + 3)
    store.record_event(SID, "answered", at=T0 + 4)  # no answered_by: keeps the known one
    # A repeated stream start clobbers neither the direction, nor who answered, nor numbers.
    store.start_call(SID, stream_sid=STREAM, started_at=iso(T0 + 9))
    store.close()
    call = read_call(store.path, SID)
    assert call["started_at"] == iso(T0 + 1)
    assert (call["direction"], call["answered_by"]) == ("inbound", "machine_end_beep")
    assert (call["from"], call["to"]) == ("+1555", "+1777")
    assert [e["seq"] for e in call["events"]] == [1, 2, 3]


def test_events_of_interleaved_calls_stay_apart(tmp_path):
    store = CallStore(tmp_path / "calls.db")
    for kind in ("initiated", "ringing", "answered"):
        store.record_event(SID, kind)
        store.record_event(OTHER, kind)
    store.close()
    for sid in (SID, OTHER):
        events = read_call(store.path, sid)["events"]
        assert [(e["seq"], e["event"]) for e in events] == [
            (1, "initiated"),
            (2, "ringing"),
            (3, "answered"),
        ]
        assert all(e["at"].endswith("+00:00") for e in events)


def test_bad_events_are_refused_before_queueing(tmp_path):
    store = CallStore(tmp_path / "calls.db")
    try:
        with pytest.raises(ValueError, match="call event must be one of"):
            store.record_event(SID, "hangup")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="needs a reason"):
            store.record_event(SID, "ended")
    finally:
        store.close()
    assert read_calls(store.path) == []


def test_event_names_and_turn_kinds_match_the_server():
    assert frozenset(typing.get_args(EventKind)) == EVENT_NAMES
    assert {"send_dtmf", "transfer"} <= TURN_KINDS


def test_status_callback_forms_become_records(tmp_path):
    """What a handler does with :func:`event_from_status`: every field lands in the record."""
    store = CallStore(tmp_path / "calls.db")
    base = {"CallSid": SID, "Direction": "outbound-api", "From": "+15550001", "To": "+15550002"}
    for status, extra in (
        ("queued", {}),
        ("ringing", {}),
        ("in-progress", {"AnsweredBy": "machine_start"}),
        ("no-answer", {}),
        ("bogus", {}),  # not a lifecycle step: nothing recorded
    ):
        event = event_from_status({**base, "CallStatus": status, **extra})
        if event is None:
            continue
        store.record_event(
            event.call_sid,
            event.kind,
            reason=event.reason,
            answered_by=event.answered_by,
            direction=event.direction,
            from_number=event.from_,
            to_number=event.to,
            at=event.at,
        )
    store.close()
    call = read_call(store.path, SID)
    assert [(e["event"], e["reason"], e["answered_by"]) for e in call["events"]] == [
        ("initiated", "", ""),
        ("ringing", "", ""),
        ("answered", "", "machine_start"),
        ("ended", "no-answer", ""),
    ]
    assert (call["direction"], call["answered_by"], call["end_reason"]) == (
        "outbound-api",
        "machine_start",
        "no-answer",
    )


def _old_database(path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SCHEMA)
    conn.execute(
        "INSERT INTO calls VALUES (?, ?, '+15551', '+15552', ?, ?, 'stop')",
        (SID, STREAM, iso(T0), iso(T0 + 3)),
    )
    conn.execute("INSERT INTO turns VALUES (?, 1, 'bot', 'greeting', 'Hello.', 20)", (SID,))
    conn.commit()
    conn.close()


def test_an_old_database_reads_as_is_and_is_migrated_when_opened(tmp_path):
    db = tmp_path / "old.db"
    _old_database(db)
    # Readers never change the file: the old rows read with the new fields empty.
    call = read_call(db, SID)
    assert (call["direction"], call["answered_by"], call["events"]) == ("", "", [])
    assert read_calls(db)[0]["direction"] == ""
    shown = CliRunner().invoke(calls, ["show", SID, "--db", str(db)])
    assert shown.exit_code == 0, shown.output
    assert "Hello." in shown.output and "direction ?" in shown.output
    # Opened by the store, it gains the new columns and table; the old call is untouched.
    store = CallStore(db)
    store.record_event(SID, "ended", reason="completed", direction="inbound", at=T0 + 10)
    store.record_event(OTHER, "ringing", direction="outbound-api", at=T0 + 20)
    store.close()
    conn = sqlite3.connect(db)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
    conn.close()
    assert {"direction", "answered_by"} <= columns
    call = read_call(db, SID)
    assert (call["end_reason"], call["ended_at"], call["direction"]) == (
        "stop",
        iso(T0 + 3),
        "inbound",
    )
    assert [t["text"] for t in call["turns"]] == ["Hello."]
    assert [e["reason"] for e in call["events"]] == ["completed"]
    assert read_call(db, OTHER)["direction"] == "outbound-api"
    # Opening it again changes nothing.
    CallStore(db).close()
    assert read_call(db, SID) == call


def test_stores_opening_one_old_database_at_once_both_migrate_it(tmp_path):
    db = tmp_path / "old.db"
    _old_database(db)
    errors: list[BaseException] = []
    stores: list[CallStore] = []

    def open_store() -> None:
        try:
            stores.append(CallStore(db))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert errors == [] and len(stores) == 4
    assert read_call(db, SID)["direction"] == ""


def test_calls_show_prints_direction_answered_by_and_events(tmp_path):
    db = tmp_path / "calls.db"
    outbound_call(db)
    result = CliRunner().invoke(calls, ["show", SID, "--db", str(db)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "  direction outbound-api  answered by human" in lines
    assert "(transferred)" in result.output
    events = [line.split() for line in lines if "  event  " in line]
    assert events == [
        ["+0.00s", "event", "initiated"],
        ["+1.50s", "event", "ringing"],
        ["+6.25s", "event", "answered", "human"],
        ["+60.00s", "event", "ended", "completed"],
    ]
    # Turns keep their time from the stream's start; the bot's actions are shown as events.
    assert any(line.split() == ["0.90s", "·", "[send_dtmf]", "1234#"] for line in lines)
    assert any(line.split() == ["1.50s", "·", "[transfer]", "+15550003333"] for line in lines)
    assert lines.index("events (from the call's start)") < lines.index(
        "turns (from the stream's start)"
    )


def test_calls_show_of_a_call_that_never_streamed(tmp_path):
    store = CallStore(tmp_path / "calls.db")
    store.record_event(SID, "ended", reason="busy", direction="outbound-api", at=T0)
    store.close()
    result = CliRunner().invoke(calls, ["show", SID, "--db", str(store.path)])
    assert result.exit_code == 0, result.output
    assert "never streamed" in result.output and "(no turns)" in result.output
    assert "+0.00s  event  ended  busy" in result.output


def test_calls_list_shows_the_direction(tmp_path):
    store = CallStore(tmp_path / "calls.db")
    store.record_event(SID, "initiated", direction="outbound-api", to_number="+1222", at=T0)
    store.record_event(OTHER, "answered", direction="inbound", from_number="+1333", at=T0 + 1)
    store.start_call("CA" + "4" * 32, started_at=iso(T0 + 2))  # direction unknown
    store.close()
    result = CliRunner().invoke(calls, ["list", "--db", str(store.path)])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[1:]}
    assert rows[SID][-4:] == ["out", "?", "→", "+1222"]
    assert rows[OTHER][-4:] == ["in", "+1333", "→", "?"]
    assert rows["CA" + "4" * 32][-4:] == ["-", "?", "→", "?"]


async def test_api_serves_the_events_as_calls_show_json(tmp_path):
    db = tmp_path / "calls.db"
    outbound_call(db)
    app = web.Application()
    add_call_routes(app, db)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        response = await client.get(f"/api/calls/{SID}")
        assert response.status == 200
        body = await response.json()
        cli = CliRunner().invoke(calls, ["show", SID, "--db", str(db), "--json"])
        assert body == json.loads(cli.output) == read_call(db, SID)
        assert [e["event"] for e in body["events"]] == ["initiated", "ringing", "answered", "ended"]
        assert (body["direction"], body["answered_by"]) == ("outbound-api", "human")
        (listed,) = await (await client.get("/api/calls")).json()
        assert (listed["direction"], listed["answered_by"]) == ("outbound-api", "human")
    finally:
        await client.close()
