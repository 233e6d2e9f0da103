"""The call records' tables in PostgreSQL (``[records] url = "postgresql://…"``), versioned.

The tables and their meaning are those of :mod:`voicehost.records.schema` (SQLite), with
``TIMESTAMPTZ`` times: ``calls`` (one row per call SID), ``turns`` (``call_sid``, ``seq``, …,
the four turn timings in ms) and ``call_events``. No foreign keys, as in SQLite (a lifecycle
event may arrive, from another instance, before the call's first turn).

``voicehost_schema`` holds the version reached. :func:`migrate` applies each step of
:data:`MIGRATIONS` above it, in order, in one transaction under an advisory lock, so several
instances starting at once migrate exactly once; a database newer than this code is refused.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SchemaTooNew", "migrate"]

#: Version N is reached by applying ``MIGRATIONS[N - 1]``; never edit a released step, add one.
MIGRATIONS: tuple[str, ...] = (
    # 1: calls, turns (with timings) and call events, as SQLite has them today.
    """
    CREATE TABLE calls (
        call_sid    TEXT PRIMARY KEY,
        stream_sid  TEXT NOT NULL DEFAULT '',
        from_number TEXT NOT NULL DEFAULT '',
        to_number   TEXT NOT NULL DEFAULT '',
        direction   TEXT NOT NULL DEFAULT '',
        answered_by TEXT NOT NULL DEFAULT '',
        started_at  TIMESTAMPTZ NOT NULL,
        ended_at    TIMESTAMPTZ,
        end_reason  TEXT
    );
    CREATE INDEX calls_started ON calls (started_at DESC);
    CREATE TABLE turns (
        call_sid       TEXT NOT NULL,
        seq            INTEGER NOT NULL,
        role           TEXT NOT NULL,
        kind           TEXT NOT NULL,
        text           TEXT NOT NULL DEFAULT '',
        at_ms          INTEGER NOT NULL,
        speech_end_ms  INTEGER,
        final_ms       INTEGER,
        first_token_ms INTEGER,
        first_audio_ms INTEGER,
        PRIMARY KEY (call_sid, seq)
    );
    CREATE TABLE call_events (
        call_sid    TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        event       TEXT NOT NULL,
        reason      TEXT NOT NULL DEFAULT '',
        answered_by TEXT NOT NULL DEFAULT '',
        at          TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (call_sid, seq)
    );
    """,
)
#: The version this code writes and reads.
SCHEMA_VERSION = len(MIGRATIONS)
# pg_advisory_xact_lock key of the migration ("voicehost" in ASCII, truncated to 63 bits).
_LOCK_KEY = 0x766F69636568


class SchemaTooNew(Exception):
    """The database was migrated by a newer voicehost (its version is above
    :data:`SCHEMA_VERSION`)."""


def migrate(conn: Any) -> int:
    """Bring the database of ``conn`` (a psycopg connection, autocommit) to
    :data:`SCHEMA_VERSION`.

    Returns:
        The version it had before (0: empty).

    Raises:
        SchemaTooNew: it is newer than this code.
        psycopg.Error: the database refused a statement.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute("CREATE TABLE IF NOT EXISTS voicehost_schema (version INTEGER NOT NULL)")
        row = conn.execute("SELECT MAX(version) FROM voicehost_schema").fetchone()
        current = int(row[0]) if row and row[0] is not None else 0
        if current > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"the records database is at schema version {current}; this voicehost knows "
                f"up to {SCHEMA_VERSION}"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[version - 1])
            conn.execute("INSERT INTO voicehost_schema (version) VALUES (%s)", (version,))
    return current
