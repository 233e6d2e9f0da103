"""The call record database's tables, and the migration of databases made by older versions.

Tables (times are UTC ISO 8601 with milliseconds, ``2026-11-22T01:59:04.123+00:00``):

* ``calls``: ``call_sid`` (Twilio ``CA…``, primary key), ``stream_sid`` (``MZ…``, ``""`` for
  a call that never streamed), ``from_number``, ``to_number``, ``direction`` (``inbound`` |
  ``outbound-api`` | ``outbound-dial`` | ``""`` unknown), ``answered_by`` (Twilio's
  ``AnsweredBy`` from machine detection, ``""`` when not asked or not answered),
  ``started_at`` (the first thing known of the call: its first lifecycle event or its stream's
  start), ``ended_at`` / ``end_reason`` (null until the call is over; reasons as
  :mod:`voicehost.server.events` lists them).
* ``turns``: ``call_sid``, ``seq`` (1, 2, … in order), ``role`` (``caller`` | ``bot`` |
  ``event``), ``kind``, ``text``, ``at_ms`` (ms from the stream's start), and the timings of
  a caller's ``final`` turn answered by the bot (null on every other turn, and each null when
  unknown), ms from the stream's start like ``at_ms``: ``speech_end_ms`` (the caller stopped
  speaking, as the STT provider reported; null when it reports no speech end), ``final_ms``
  (the final transcript arrived), ``first_token_ms`` (the responder's first text of the
  answer), ``first_audio_ms`` (the answer's first audio frame went to Twilio's socket).
* ``call_events``: ``call_sid``, ``seq`` (1, 2, … in the order they were recorded), ``event``
  (``initiated`` | ``ringing`` | ``answered`` | ``ended``), ``reason`` (for ``ended``),
  ``answered_by`` (for ``answered``), ``at``.

A database written before ``direction`` / ``answered_by`` / ``call_events`` / the turn
timings existed is
brought up to date by :func:`migrate` when a :class:`~voicehost.records.CallStore` opens it
(existing rows read ``""`` for the new columns). Readers never migrate (they open the file
read-only); :func:`has_table` / the row's keys let them read an old file as it is.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

#: The tables of the first version (calls and turns only); kept to create old databases in
#: tests and as the base :func:`migrate` builds on.
SCHEMA_V1 = """
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

#: Columns added to ``calls`` after the first version: name → its SQL definition.
ADDED_CALL_COLUMNS: dict[str, str] = {
    "direction": "TEXT NOT NULL DEFAULT ''",
    "answered_by": "TEXT NOT NULL DEFAULT ''",
}

#: Columns added to ``turns`` after the first version (the turn timings): name → definition.
ADDED_TURN_COLUMNS: dict[str, str] = {
    "speech_end_ms": "INTEGER",
    "final_ms": "INTEGER",
    "first_token_ms": "INTEGER",
    "first_audio_ms": "INTEGER",
}

_EVENTS_TABLE = """
CREATE TABLE IF NOT EXISTS call_events (
    call_sid    TEXT NOT NULL REFERENCES calls(call_sid),
    seq         INTEGER NOT NULL,
    event       TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    answered_by TEXT NOT NULL DEFAULT '',
    at          TEXT NOT NULL,
    PRIMARY KEY (call_sid, seq)
)
"""


def utc_now_iso() -> str:
    """Now, as UTC ISO 8601 with milliseconds (``2026-11-22T01:59:04.123+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def iso_from_epoch(at: float) -> str:
    """``at`` (wall-clock seconds since the epoch) as UTC ISO 8601 with milliseconds."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


def connect(path: Path) -> sqlite3.Connection:
    """A read-write connection in autocommit mode (transactions are explicit), rows by name."""
    conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """The column names of ``table`` (empty when there is no such table)."""
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def has_table(conn: sqlite3.Connection, table: str) -> bool:
    """Whether the database of ``conn`` has a table named ``table``."""
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    return found is not None


def migrate(conn: sqlite3.Connection) -> None:
    """Create the tables when missing and add what older versions lack, in one transaction.

    Idempotent, and safe when two processes open the same file at once: the checks run
    inside ``BEGIN IMMEDIATE``, so the second one sees the first one's columns.

    Raises:
        sqlite3.Error: the file is not a database, is read-only, or stays locked.
    """
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        for statement in SCHEMA_V1.split(";"):
            if statement.strip():
                conn.execute(statement)
        present = columns(conn, "calls")
        for name, definition in ADDED_CALL_COLUMNS.items():
            if name not in present:
                conn.execute(f"ALTER TABLE calls ADD COLUMN {name} {definition}")
        present = columns(conn, "turns")
        for name, definition in ADDED_TURN_COLUMNS.items():
            if name not in present:
                conn.execute(f"ALTER TABLE turns ADD COLUMN {name} {definition}")
        conn.execute(_EVENTS_TABLE)
