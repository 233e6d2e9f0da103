"""``voicehost calls stats``: latency percentiles of the latest calls' turns (their
:class:`~voicehost.records.timings.TurnTimings`), and counts of barge-ins and errors."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from voicehost.records.read import open_for_read
from voicehost.records.schema import columns
from voicehost.records.source import RecordSource, is_postgres_url
from voicehost.records.timings import LATENCIES, TIMING_FIELDS, TurnTimings

__all__ = ["MAX_STATS_CALLS", "call_stats", "percentile"]

#: The most calls ``calls stats --last`` reads.
MAX_STATS_CALLS = 100_000
#: The latest calls (``LIMIT ?``), for ``… WHERE call_sid IN (_PICKED)``.
_PICKED = "SELECT call_sid FROM calls ORDER BY started_at DESC, rowid DESC LIMIT ?"


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The ``pct`` percentile (0–100) of ``values`` by the nearest-rank method (a value
    that occurred); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def call_stats(path: RecordSource, last: int = 100) -> dict[str, Any]:
    """Latency percentiles and counts over the latest ``last`` calls (by start time).

    Shape::

        {"calls": 12, "answered_turns": 30,
         "latency_ms": {"turn": {"count", "p50", "p95"}, "stt_final": {…},
                        "responder_first_token": {…}, "tts_first_audio": {…}},
         "barge_ins": 3,
         "errors": {"calls": 1, "tools": 0, "transfers": 0}}

    ``answered_turns``: caller turns with timings; each latency's ``count`` is how many of
    them had it (``p50`` / ``p95`` in ms, null without any). ``barge_ins``: ``barge_in``
    turns. ``errors``: calls that ended with reason ``error``, tool results that were
    errors, transfers that failed.

    Raises:
        ConfigError: no database at ``path``, or it is not a voicehost one.
    """
    if is_postgres_url(path):
        from voicehost.records import pg_read  # psycopg: only for Postgres records

        return pg_read.call_stats(str(path), min(max(0, last), MAX_STATS_CALLS), percentile)
    limit = (min(max(0, last), MAX_STATS_CALLS),)
    conn = open_for_read(path)
    try:
        calls = conn.execute(f"SELECT COUNT(*) FROM ({_PICKED})", limit).fetchone()[0]
        samples: dict[str, list[int]] = {name: [] for name in LATENCIES}
        answered = 0
        if set(TIMING_FIELDS) <= columns(conn, "turns"):
            for row in conn.execute(
                f"SELECT * FROM turns WHERE call_sid IN ({_PICKED})"
                " AND role = 'caller' AND kind = 'final'",
                limit,
            ):
                timings = TurnTimings.from_row(row)
                if timings is None:
                    continue
                answered += 1
                for name, value in timings.latencies().items():
                    if value is not None:
                        samples[name].append(value)

        def count(table: str, where: str) -> int:
            query = f"SELECT COUNT(*) FROM {table} WHERE call_sid IN ({_PICKED}) AND {where}"
            return conn.execute(query, limit).fetchone()[0]

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
            "barge_ins": count("turns", "kind = 'barge_in'"),
            "errors": {
                "calls": count("calls", "end_reason = 'error'"),
                "tools": count("turns", "kind = 'tool_result' AND text LIKE 'error:%'"),
                "transfers": count("turns", "kind = 'transfer' AND text LIKE 'failed:%'"),
            },
        }
    finally:
        conn.close()
