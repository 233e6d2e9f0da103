"""Reading call records from PostgreSQL: what :mod:`voicehost.records.read` and
:mod:`voicehost.records.stats` answer for SQLite, in exactly the same shapes (times as UTC ISO
8601 with milliseconds, ``2026-11-22T01:59:04.123+00:00``).

Each function opens one short connection (``connect_timeout`` 5 s) on the calling thread; the
HTTP API runs them through :func:`asyncio.to_thread`. They never migrate: a database with no
tables yet reads as no calls.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from voicehost.errors import ConfigError
from voicehost.records.source import is_postgres_url, redacted
from voicehost.records.timings import LATENCIES, TurnTimings

__all__ = ["call_stats", "is_postgres_url", "read_call", "read_calls", "redacted"]

_TURN_FIELDS = ("seq", "role", "kind", "text", "at_ms")
_CONNECT_TIMEOUT_S = 5
_PICKED = "SELECT call_sid FROM calls ORDER BY started_at DESC, call_sid DESC LIMIT %(limit)s"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="milliseconds")


def _call_json(row: dict[str, Any], turns: int | None = None) -> dict[str, Any]:
    started, ended = row["started_at"], row["ended_at"]
    data: dict[str, Any] = {
        "call_sid": row["call_sid"],
        "stream_sid": row["stream_sid"],
        "from": row["from_number"],
        "to": row["to_number"],
        "direction": row["direction"],
        "answered_by": row["answered_by"],
        "started_at": _iso(started),
        "ended_at": _iso(ended),
        "end_reason": row["end_reason"],
        "duration_ms": round((ended - started).total_seconds() * 1e3) if ended else None,
    }
    if turns is not None:
        data["turn_count"] = turns
    return data


def _connect(url: str) -> psycopg.Connection[dict[str, Any]]:
    try:
        return psycopg.connect(
            url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S, row_factory=dict_row
        )
    except psycopg.Error as exc:
        raise ConfigError(f"[records] url {redacted(url)}: cannot connect: {exc}") from None


def _has_tables(conn: psycopg.Connection[dict[str, Any]]) -> bool:
    row = conn.execute("SELECT to_regclass('calls') IS NOT NULL AS present").fetchone()
    return bool(row and row["present"])


def read_call(url: str, call_sid: str) -> dict[str, Any] | None:
    """One call, shaped as :func:`voicehost.records.read.read_call` shapes it, or None.

    Raises:
        ConfigError: the database cannot be reached or read.
    """
    with _connect(url) as conn:
        try:
            if not _has_tables(conn):
                return None
            row = conn.execute("SELECT * FROM calls WHERE call_sid = %s", (call_sid,)).fetchone()
            if row is None:
                return None
            data = _call_json(row)
            events = conn.execute(
                "SELECT seq, event, reason, answered_by, at FROM call_events"
                " WHERE call_sid = %s ORDER BY seq",
                (call_sid,),
            ).fetchall()
            data["events"] = [{**e, "at": _iso(e["at"])} for e in events]
            turns = conn.execute(
                "SELECT * FROM turns WHERE call_sid = %s ORDER BY seq", (call_sid,)
            ).fetchall()
        except psycopg.Error as exc:
            raise ConfigError(f"[records] url {redacted(url)}: {exc}") from None
    data["turns"] = [{k: t[k] for k in _TURN_FIELDS} | {"timings": _timings_json(t)} for t in turns]
    return data


def _timings_json(row: dict[str, Any]) -> dict[str, Any] | None:
    timings = TurnTimings.from_row(row)  # type: ignore[arg-type]  # a dict has keys() too
    return timings.to_json() if timings is not None else None


def read_calls(url: str, limit: int = 50, *, max_limit: int = 1000) -> list[dict[str, Any]]:
    """The latest ``limit`` calls (at most ``max_limit``), newest first, as
    :func:`voicehost.records.read.read_calls` gives them.

    Raises:
        ConfigError: the database cannot be reached or read.
    """
    with _connect(url) as conn:
        try:
            if not _has_tables(conn):
                return []
            rows = conn.execute(
                "SELECT c.*, (SELECT COUNT(*) FROM turns t WHERE t.call_sid = c.call_sid) AS n"
                " FROM calls c ORDER BY c.started_at DESC, c.call_sid DESC LIMIT %s",
                (min(max(0, limit), max_limit),),
            ).fetchall()
        except psycopg.Error as exc:
            raise ConfigError(f"[records] url {redacted(url)}: {exc}") from None
    return [_call_json(row, int(row["n"])) for row in rows]


def call_stats(url: str, last: int, percentile: Any) -> dict[str, Any]:
    """:func:`voicehost.records.stats.call_stats` over Postgres (``percentile`` is its
    nearest-rank function).

    Raises:
        ConfigError: the database cannot be reached or read.
    """
    params = {"limit": max(0, last)}
    samples: dict[str, list[int]] = {name: [] for name in LATENCIES}
    with _connect(url) as conn:
        if not _has_tables(conn):
            calls, answered, counts = 0, 0, {}
        else:
            try:
                calls = conn.execute(
                    f"SELECT COUNT(*) AS n FROM ({_PICKED}) AS picked", params
                ).fetchone()
                answered = 0
                for row in conn.execute(
                    f"SELECT * FROM turns WHERE call_sid IN ({_PICKED})"
                    " AND role = 'caller' AND kind = 'final'",
                    params,
                ):
                    timings = TurnTimings.from_row(row)  # type: ignore[arg-type]
                    if timings is None:
                        continue
                    answered += 1
                    for name, value in timings.latencies().items():
                        if value is not None:
                            samples[name].append(value)
                counts = {}
                for key, table, where in (
                    ("barge_ins", "turns", "kind = 'barge_in'"),
                    ("calls", "calls", "end_reason = 'error'"),
                    ("tools", "turns", "kind = 'tool_result' AND text LIKE 'error:%%'"),
                    ("transfers", "turns", "kind = 'transfer' AND text LIKE 'failed:%%'"),
                ):
                    query = (
                        f"SELECT COUNT(*) AS n FROM {table}"
                        f" WHERE call_sid IN ({_PICKED}) AND {where}"
                    )
                    counts[key] = int(conn.execute(query, params).fetchone()["n"])  # type: ignore[index]
            except psycopg.Error as exc:
                raise ConfigError(f"[records] url {redacted(url)}: {exc}") from None
            calls = int(calls["n"]) if calls else 0  # type: ignore[index]
    return {
        "calls": calls,
        "answered_turns": answered,
        "latency_ms": {
            name: {
                "count": len(values),
                "p50": percentile(values, 50),
                "p95": percentile(values, 95),
            }
            for name, values in samples.items()
        },
        "barge_ins": counts.get("barge_ins", 0),
        "errors": {
            "calls": counts.get("calls", 0),
            "tools": counts.get("tools", 0),
            "transfers": counts.get("transfers", 0),
        },
    }
