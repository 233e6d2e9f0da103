"""Call records: every call and its ordered turns, stored in SQLite.

Schema (``[records] path``, default ``./voicehost.db``):

* ``calls``: ``call_sid`` (Twilio ``CA…``, primary key), ``stream_sid`` (``MZ…``),
  ``from_number``, ``to_number``, ``started_at`` / ``ended_at`` (UTC ISO 8601 with ms),
  ``end_reason`` (``"stop"``, ``"hangup"``, ``"responder_hangup"``, ``"disconnect"`` …).
* ``turns``: ``call_sid``, ``seq`` (1, 2, … in the order they happened), ``role``
  (``caller`` | ``bot`` | ``event``), ``kind`` (``final`` caller transcript, ``greeting`` /
  ``reply`` bot text, ``barge_in`` / ``dtmf`` events), ``text``, ``at_ms`` (ms from call start).

Writes never block the event loop: :class:`CallStore` owns one writer thread with its own
connection; ``start_call`` / ``add_turn`` / ``end_call`` only put a job on its queue. Each job
is committed on its own in WAL mode, so a crash mid-call leaves every finished turn stored
(the call then has no ``ended_at``). Reads open their own short-lived connections and may run
on any thread (the HTTP API calls them through :func:`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from voicehost.errors import ConfigError

logger = logging.getLogger(__name__)

TurnRole = Literal["caller", "bot", "event"]
TurnKind = Literal["final", "greeting", "reply", "barge_in", "dtmf"]
TURN_KINDS: frozenset[str] = frozenset({"final", "greeting", "reply", "barge_in", "dtmf"})
TURN_ROLES: frozenset[str] = frozenset({"caller", "bot", "event"})
#: Where call records are kept when ``[records] path`` is not set.
DEFAULT_PATH = "./voicehost.db"
#: The most calls one listing returns (``calls list --limit``, ``/api/calls?limit=``).
MAX_LIST_LIMIT = 1000

_SCHEMA = """
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


def utc_now_iso() -> str:
    """Now, as UTC ISO 8601 with milliseconds (``2026-11-22T01:59:04.123+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


_STOP = object()


class CallStore:
    """The call record store: one SQLite file, one writer thread.

    Args:
        path: the database file; created (with its tables) when missing. Its directory must
            exist.

    Raises:
        ConfigError: the file cannot be opened or is not a voicehost database.

    The write methods return a :class:`concurrent.futures.Future` that resolves once the job is
    committed; callers on the event loop ignore it (fire and forget) or ``await``
    :meth:`flush`. A failed write is logged and never raises into the call.
    """

    def __init__(self, path: str | Path = DEFAULT_PATH) -> None:
        self.path = Path(path)
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        opened: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(opened,), name=f"voicehost-records:{self.path}", daemon=True
        )
        self._thread.start()
        try:
            opened.result()
        except sqlite3.Error as exc:
            raise ConfigError(f"[records] path {str(self.path)!r}: cannot open: {exc}") from exc

    # -- writer thread -------------------------------------------------------------------
    def _run(self, opened: concurrent.futures.Future[None]) -> None:
        try:
            conn = _connect(self.path)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            opened.set_exception(exc)
            return
        opened.set_result(None)
        try:
            while True:
                job = self._jobs.get()
                if job is _STOP:
                    return
                fn, future = job
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    with conn:  # one transaction per job: committed when it returns
                        conn.execute("BEGIN IMMEDIATE")
                        result = fn(conn)
                    future.set_result(result)
                except Exception as exc:
                    logger.exception("call records: write failed")
                    future.set_exception(exc)
        finally:
            conn.close()

    def _submit(self, fn: Callable[[sqlite3.Connection], Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if self._closed:
            future.set_exception(RuntimeError("call store is closed"))
            return future
        self._jobs.put((fn, future))
        return future

    # -- writes (non-blocking) -------------------------------------------------------------
    def start_call(
        self,
        call_sid: str,
        *,
        stream_sid: str = "",
        from_number: str = "",
        to_number: str = "",
        started_at: str | None = None,
    ) -> concurrent.futures.Future[Any]:
        """Record that a call's stream started. A repeated ``call_sid`` updates the row."""
        started = started_at or utc_now_iso()

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO calls (call_sid, stream_sid, from_number, to_number, started_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(call_sid) DO UPDATE SET"
                " stream_sid = excluded.stream_sid, from_number = excluded.from_number,"
                " to_number = excluded.to_number",
                (call_sid, stream_sid, from_number, to_number, started),
            )

        return self._submit(write)

    def add_turn(
        self, call_sid: str, role: TurnRole, kind: TurnKind, text: str, at_ms: int
    ) -> concurrent.futures.Future[Any]:
        """Append one turn (``at_ms``: ms from call start) and commit it.

        Raises:
            ValueError: ``role`` or ``kind`` is not one of the known values (at once, before
                anything is queued).
        """
        if role not in TURN_ROLES:
            raise ValueError(f"turn role must be one of {sorted(TURN_ROLES)}, got {role!r}")
        if kind not in TURN_KINDS:
            raise ValueError(f"turn kind must be one of {sorted(TURN_KINDS)}, got {kind!r}")

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO turns (call_sid, seq, role, kind, text, at_ms) VALUES"
                " (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM turns WHERE call_sid = ?),"
                " ?, ?, ?, ?)",
                (call_sid, call_sid, role, kind, text, max(0, int(at_ms))),
            )

        return self._submit(write)

    def end_call(
        self, call_sid: str, reason: str, *, ended_at: str | None = None
    ) -> concurrent.futures.Future[Any]:
        """Record the end of a call and why (``"stop"``, ``"hangup"`` …)."""
        ended = ended_at or utc_now_iso()

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE calls SET ended_at = ?, end_reason = ? WHERE call_sid = ?",
                (ended, reason, call_sid),
            )

        return self._submit(write)

    async def flush(self) -> None:
        """Wait (without blocking the loop) until every write queued so far is committed."""
        await asyncio.wrap_future(self._submit(lambda conn: None))

    def close(self) -> None:
        """Commit what is queued, then stop the writer thread. Idempotent; blocks briefly."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(_STOP)
        self._thread.join()

    async def aclose(self) -> None:
        """:meth:`close` off the event loop."""
        await asyncio.to_thread(self.close)

    # -- reads (any thread) -----------------------------------------------------------------
    def get_call(self, call_sid: str) -> dict[str, Any] | None:
        """One call with its turns, as :func:`read_call` returns it; None when unknown."""
        return read_call(self.path, call_sid)

    def list_calls(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest calls, newest first, as :func:`read_calls` returns them."""
        return read_calls(self.path, limit)


def _call_json(row: sqlite3.Row, turns: int | None = None) -> dict[str, Any]:
    duration_ms = None
    if row["ended_at"]:
        start = datetime.fromisoformat(row["started_at"])
        duration_ms = round((datetime.fromisoformat(row["ended_at"]) - start).total_seconds() * 1e3)
    data: dict[str, Any] = {
        "call_sid": row["call_sid"],
        "stream_sid": row["stream_sid"],
        "from": row["from_number"],
        "to": row["to_number"],
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
        "end_reason": row["end_reason"],
        "duration_ms": duration_ms,
    }
    if turns is not None:
        data["turn_count"] = turns
    return data


def _open_for_read(path: str | Path) -> sqlite3.Connection:
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


def read_call(path: str | Path, call_sid: str) -> dict[str, Any] | None:
    """One call as JSON-ready data, or None when ``call_sid`` is unknown.

    Shape: ``{"call_sid", "stream_sid", "from", "to", "started_at", "ended_at",
    "end_reason", "duration_ms", "turns": [{"seq", "role", "kind", "text", "at_ms"}, …]}``;
    ``ended_at`` / ``end_reason`` / ``duration_ms`` are null while the call is live (or if the
    server died during it). Turns are in the order they happened.

    Raises:
        ConfigError: no database at ``path``, or it is not a voicehost one.
    """
    conn = _open_for_read(path)
    try:
        row = conn.execute("SELECT * FROM calls WHERE call_sid = ?", (call_sid,)).fetchone()
        if row is None:
            return None
        data = _call_json(row)
        data["turns"] = [
            {k: t[k] for k in ("seq", "role", "kind", "text", "at_ms")}
            for t in conn.execute(
                "SELECT * FROM turns WHERE call_sid = ? ORDER BY seq", (call_sid,)
            )
        ]
        return data
    finally:
        conn.close()


def read_calls(path: str | Path, limit: int = 50) -> list[dict[str, Any]]:
    """The latest ``limit`` calls (at most :data:`MAX_LIST_LIMIT`), newest first, each as in
    :func:`read_call` but with ``turn_count`` instead of ``turns``.

    Raises:
        ConfigError: as :func:`read_call`.
    """
    conn = _open_for_read(path)
    try:
        rows = conn.execute(
            "SELECT c.*, (SELECT COUNT(*) FROM turns t WHERE t.call_sid = c.call_sid) AS n"
            " FROM calls c ORDER BY c.started_at DESC, c.rowid DESC LIMIT ?",
            (min(max(0, limit), MAX_LIST_LIMIT),),
        ).fetchall()
        return [_call_json(row, row["n"]) for row in rows]
    finally:
        conn.close()
