"""Reading call records: one call with its events and turns, or the latest calls.

The functions open the database read-only on the calling thread (the HTTP API runs them
through :func:`asyncio.to_thread`) and never change it: a database written by an older
version (no ``direction`` / ``answered_by`` columns, no ``call_events`` table, no turn
timings) reads as if those were ``""``, empty and null.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from voicehost.errors import ConfigError
from voicehost.records.schema import has_table
from voicehost.records.source import RecordSource, is_postgres_url
from voicehost.records.timings import TurnTimings

#: The most calls one listing returns (``calls list --limit``, ``/api/calls?limit=``).
MAX_LIST_LIMIT = 1000

_TURN_FIELDS = ("seq", "role", "kind", "text", "at_ms")
_EVENT_FIELDS = ("seq", "event", "reason", "answered_by", "at")


def _call_json(row: sqlite3.Row, turns: int | None = None) -> dict[str, Any]:
    duration_ms = None
    if row["ended_at"]:
        start = datetime.fromisoformat(row["started_at"])
        duration_ms = round((datetime.fromisoformat(row["ended_at"]) - start).total_seconds() * 1e3)
    present = row.keys()
    data: dict[str, Any] = {
        "call_sid": row["call_sid"],
        "stream_sid": row["stream_sid"],
        "from": row["from_number"],
        "to": row["to_number"],
        "direction": row["direction"] if "direction" in present else "",
        "answered_by": row["answered_by"] if "answered_by" in present else "",
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
        "end_reason": row["end_reason"],
        "duration_ms": duration_ms,
    }
    if turns is not None:
        data["turn_count"] = turns
    return data


def open_for_read(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to the call records at ``path`` (rows by name).

    Raises:
        ConfigError: no file at ``path``, or it is not a voicehost call record database.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no call records at {str(path)!r} (set [records] path)")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        conn.execute("SELECT 1 FROM calls LIMIT 1")
    except sqlite3.Error as exc:
        raise ConfigError(f"{str(path)!r} is not a voicehost call record database: {exc}") from exc
    return conn


def read_call(path: RecordSource, call_sid: str) -> dict[str, Any] | None:
    """One call as JSON-ready data, or None when ``call_sid`` is unknown. ``path`` is the
    SQLite file, or a ``postgresql://`` URL (:mod:`voicehost.records.pg_read`).

    Shape::

        {"call_sid", "stream_sid", "from", "to", "direction", "answered_by",
         "started_at", "ended_at", "end_reason", "duration_ms",
         "events": [{"seq", "event", "reason", "answered_by", "at"}, …],
         "turns": [{"seq", "role", "kind", "text", "at_ms", "timings"}, …]}

    ``stream_sid`` / ``from`` / ``to`` / ``direction`` / ``answered_by`` are ``""`` when
    unknown (a call that never streamed has no stream SID). ``ended_at`` / ``end_reason`` /
    ``duration_ms`` (ms from ``started_at`` to ``ended_at``) are null while the call is live
    (or if the server died during it). Times are UTC ISO 8601 with ms; a turn's ``at_ms`` is
    ms from the stream's start. Events (``initiated`` / ``ringing`` / ``answered`` /
    ``ended``) and turns are each in the order they were recorded. A turn's ``timings`` is
    null except on a caller's ``final`` turn the bot answered, where it is
    ``{"speech_end_ms", "final_ms", "first_token_ms", "first_audio_ms", "latency_ms": {"turn",
    "stt_final", "responder_first_token", "tts_first_audio"}}`` (ms; each null when unknown;
    :mod:`voicehost.records.timings`).

    Raises:
        ConfigError: no database at ``path``, or it is not a voicehost one.
    """
    if is_postgres_url(path):
        from voicehost.records import pg_read  # psycopg: only for Postgres records

        return pg_read.read_call(str(path), call_sid)
    conn = open_for_read(path)
    try:
        row = conn.execute("SELECT * FROM calls WHERE call_sid = ?", (call_sid,)).fetchone()
        if row is None:
            return None
        data = _call_json(row)
        data["events"] = []
        if has_table(conn, "call_events"):
            data["events"] = [
                {k: e[k] for k in _EVENT_FIELDS}
                for e in conn.execute(
                    "SELECT * FROM call_events WHERE call_sid = ? ORDER BY seq", (call_sid,)
                )
            ]
        data["turns"] = [
            {k: t[k] for k in _TURN_FIELDS} | {"timings": _timings_json(t)}
            for t in conn.execute(
                "SELECT * FROM turns WHERE call_sid = ? ORDER BY seq", (call_sid,)
            )
        ]
        return data
    finally:
        conn.close()


def _timings_json(row: sqlite3.Row) -> dict[str, Any] | None:
    timings = TurnTimings.from_row(row)
    return timings.to_json() if timings is not None else None


def read_calls(path: RecordSource, limit: int = 50) -> list[dict[str, Any]]:
    """The latest ``limit`` calls (at most :data:`MAX_LIST_LIMIT`), newest first, each as in
    :func:`read_call` but with ``turn_count`` instead of ``events`` and ``turns``.

    Raises:
        ConfigError: as :func:`read_call`.
    """
    if is_postgres_url(path):
        from voicehost.records import pg_read  # psycopg: only for Postgres records

        return pg_read.read_calls(str(path), limit, max_limit=MAX_LIST_LIMIT)
    conn = open_for_read(path)
    try:
        rows = conn.execute(
            "SELECT c.*, (SELECT COUNT(*) FROM turns t WHERE t.call_sid = c.call_sid) AS n"
            " FROM calls c ORDER BY c.started_at DESC, c.rowid DESC LIMIT ?",
            (min(max(0, limit), MAX_LIST_LIMIT),),
        ).fetchall()
        return [_call_json(row, row["n"]) for row in rows]
    finally:
        conn.close()
