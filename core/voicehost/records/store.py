"""Call records: every call, its lifecycle events and its ordered turns, stored in SQLite.

The tables (``[records] path``, default ``./voicehost.db``) are described in
:mod:`voicehost.records.schema`: ``calls`` (one row per call SID, with ``direction``,
``answered_by``, ``started_at`` / ``ended_at`` / ``end_reason``), ``call_events``
(``initiated`` / ``ringing`` / ``answered`` / ``ended``, in order) and ``turns`` (what was
said and pressed, ``at_ms`` from the stream's start; an answered caller turn's timings,
:mod:`voicehost.records.timings`).

Writes never block the event loop: :class:`CallStore` owns one writer thread with its own
connection; ``start_call`` / ``add_turn`` / ``set_turn_timings`` / ``record_event`` /
``end_call`` only put a job on its queue. Each job is committed on its own in WAL mode, so a
crash mid-call leaves every finished turn stored (the call then has no ``ended_at``). Reads
open their own short-lived read-only connections and may run on any thread (the HTTP API
calls them through :func:`asyncio.to_thread`); they read a database of an older version as
it is.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from voicehost.errors import ConfigError
from voicehost.records.read import MAX_LIST_LIMIT, read_call, read_calls
from voicehost.records.schema import connect, iso_from_epoch, migrate, utc_now_iso
from voicehost.records.timings import TIMING_FIELDS, TurnTimings

__all__ = [
    "DEFAULT_PATH",
    "EVENT_NAMES",
    "MAX_LIST_LIMIT",
    "TURN_KINDS",
    "TURN_ROLES",
    "CallStore",
    "EventName",
    "TurnKind",
    "TurnRole",
    "TurnTimings",
    "read_call",
    "read_calls",
    "utc_now_iso",
]

logger = logging.getLogger(__name__)

TurnRole = Literal["caller", "bot", "event"]
#: ``final`` caller transcript; ``greeting`` / ``reply`` bot text (what the caller heard: a
#: reply cut off by barge-in keeps the sentences that played); event turns: ``barge_in`` (the
#: caller cut the bot off), ``dtmf`` (the caller pressed a key; text = the key), ``send_dtmf``
#: (the bot pressed keys; text = the digits), ``transfer`` (the bot handed the call on; text =
#: the target number or SIP URI), ``tool_call`` (the responder called a tool; text =
#: ``name(arguments JSON)``), ``tool_result`` (what the tool gave back; text = the result
#: JSON, ``error: …`` when it failed).
TurnKind = Literal[
    "final",
    "greeting",
    "reply",
    "barge_in",
    "dtmf",
    "send_dtmf",
    "transfer",
    "tool_call",
    "tool_result",
]
TURN_KINDS: frozenset[str] = frozenset(
    {
        "final",
        "greeting",
        "reply",
        "barge_in",
        "dtmf",
        "send_dtmf",
        "transfer",
        "tool_call",
        "tool_result",
    }
)
TURN_ROLES: frozenset[str] = frozenset({"caller", "bot", "event"})
#: A call lifecycle event, as :data:`voicehost.server.events.EventKind` (not imported from
#: there: reading records must not load the server).
EventName = Literal["initiated", "ringing", "answered", "ended"]
EVENT_NAMES: frozenset[str] = frozenset({"initiated", "ringing", "answered", "ended"})
#: Where call records are kept when ``[records] path`` is not set.
DEFAULT_PATH = "./voicehost.db"

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
            conn = connect(self.path)
        except sqlite3.Error as exc:
            opened.set_exception(exc)
            return
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn)
        except sqlite3.Error as exc:
            conn.close()
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
        """Record that a call's stream started.

        A call already known (from its lifecycle events, or a repeated ``call_sid``) keeps
        its ``started_at``, ``direction`` and ``answered_by``; its ``stream_sid`` is set, and
        ``from_number`` / ``to_number`` are set unless given empty.
        """
        started = started_at or utc_now_iso()

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO calls (call_sid, stream_sid, from_number, to_number, started_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(call_sid) DO UPDATE SET"
                " stream_sid = excluded.stream_sid,"
                " from_number = COALESCE(NULLIF(excluded.from_number, ''), calls.from_number),"
                " to_number = COALESCE(NULLIF(excluded.to_number, ''), calls.to_number)",
                (call_sid, stream_sid, from_number, to_number, started),
            )

        return self._submit(write)

    def add_turn(
        self,
        call_sid: str,
        role: TurnRole,
        kind: TurnKind,
        text: str,
        at_ms: int,
        *,
        timings: TurnTimings | None = None,
    ) -> concurrent.futures.Future[Any]:
        """Append one turn (``at_ms``: ms from call start) and commit it; the returned
        future resolves to the turn's ``seq``.

        Args:
            timings: a caller turn's timings known so far (:meth:`set_turn_timings` sets
                them later).

        Raises:
            ValueError: ``role`` or ``kind`` is not one of the known values (at once, before
                anything is queued).
        """
        if role not in TURN_ROLES:
            raise ValueError(f"turn role must be one of {sorted(TURN_ROLES)}, got {role!r}")
        if kind not in TURN_KINDS:
            raise ValueError(f"turn kind must be one of {sorted(TURN_KINDS)}, got {kind!r}")

        times = timings.values() if timings is not None else (None,) * len(TIMING_FIELDS)

        def write(conn: sqlite3.Connection) -> int:
            conn.execute(
                "INSERT INTO turns (call_sid, seq, role, kind, text, at_ms, speech_end_ms,"
                " final_ms, first_token_ms, first_audio_ms) VALUES"
                " (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM turns WHERE call_sid = ?),"
                " ?, ?, ?, ?, ?, ?, ?, ?)",
                (call_sid, call_sid, role, kind, text, max(0, int(at_ms)), *times),
            )
            query = "SELECT MAX(seq) FROM turns WHERE call_sid = ?"  # same transaction
            return int(conn.execute(query, (call_sid,)).fetchone()[0])

        return self._submit(write)

    def set_turn_timings(
        self,
        call_sid: str,
        seq: int | concurrent.futures.Future[Any],
        timings: TurnTimings,
    ) -> concurrent.futures.Future[Any]:
        """Set the timings of turn ``seq`` of ``call_sid`` (every one of the four, null
        where ``timings`` has None) and commit.

        Args:
            seq: the turn's ``seq``, or the future :meth:`add_turn` returned for it (jobs run
                in order, so it has resolved by then; a turn that failed to be written gets
                no timings).
        """

        def write(conn: sqlite3.Connection) -> None:
            number = seq.result() if isinstance(seq, concurrent.futures.Future) else seq
            conn.execute(
                "UPDATE turns SET speech_end_ms = ?, final_ms = ?, first_token_ms = ?,"
                " first_audio_ms = ? WHERE call_sid = ? AND seq = ?",
                (*timings.values(), call_sid, number),
            )

        return self._submit(write)

    def record_event(
        self,
        call_sid: str,
        event: EventName,
        *,
        reason: str = "",
        answered_by: str = "",
        direction: str = "",
        from_number: str = "",
        to_number: str = "",
        at: float | None = None,
    ) -> concurrent.futures.Future[Any]:
        """Append one lifecycle event of a call (a :class:`voicehost.server.events.CallEvent`)
        and commit it.

        Args:
            call_sid: Twilio call SID.
            event: ``initiated`` | ``ringing`` | ``answered`` | ``ended``.
            reason: why the call ended (``ended`` only; required there).
            answered_by: Twilio's ``AnsweredBy`` (``answered``), ``""`` when unknown.
            direction / from_number / to_number: what the event says of the call, ``""``
                when it does not say.
            at: when it happened, wall-clock seconds since the epoch; None means now.

        A call not yet known gets its row here (``started_at`` = ``at``), so a call that
        never streamed (rejected, busy, unanswered, a notify call) is still recorded; a known
        one keeps the ``direction`` / numbers it has and gets those it lacks, and its
        ``started_at`` moves back to ``at`` when that is earlier. ``answered`` with an
        ``answered_by`` sets the call's ``answered_by``. ``ended`` sets ``ended_at`` and
        ``end_reason`` only when the call has no end reason yet: the first reason wins, so a
        final status callback (``completed``) arriving after the stream ended with
        ``transferred`` or ``bot-hangup`` (:meth:`end_call`) is kept as an event but does
        not overwrite it.

        Raises:
            ValueError: ``event`` is unknown, or an ``ended`` event has no reason (at once,
                before anything is queued).
        """
        if event not in EVENT_NAMES:
            raise ValueError(f"call event must be one of {sorted(EVENT_NAMES)}, got {event!r}")
        if event == "ended" and not reason:
            raise ValueError("an 'ended' call event needs a reason")
        when = utc_now_iso() if at is None else iso_from_epoch(at)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO calls (call_sid, from_number, to_number, direction, started_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(call_sid) DO UPDATE SET"
                " from_number = COALESCE(NULLIF(calls.from_number, ''), excluded.from_number),"
                " to_number = COALESCE(NULLIF(calls.to_number, ''), excluded.to_number),"
                " direction = COALESCE(NULLIF(calls.direction, ''), excluded.direction),"
                " started_at = MIN(calls.started_at, excluded.started_at)",
                (call_sid, from_number, to_number, direction, when),
            )
            conn.execute(
                "INSERT INTO call_events (call_sid, seq, event, reason, answered_by, at) VALUES"
                " (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM call_events WHERE call_sid = ?),"
                " ?, ?, ?, ?)",
                (call_sid, call_sid, event, reason, answered_by, when),
            )
            if event == "answered" and answered_by:
                conn.execute(
                    "UPDATE calls SET answered_by = ? WHERE call_sid = ?", (answered_by, call_sid)
                )
            elif event == "ended":
                conn.execute(
                    "UPDATE calls SET ended_at = ?, end_reason = ?"
                    " WHERE call_sid = ? AND end_reason IS NULL",
                    (when, reason, call_sid),
                )

        return self._submit(write)

    def end_call(
        self, call_sid: str, reason: str, *, ended_at: str | None = None
    ) -> concurrent.futures.Future[Any]:
        """Record that a call's stream ended, and why (``caller-hangup``, ``bot-hangup``,
        ``transferred``, ``max-duration`` … as :mod:`voicehost.server.events` lists them).

        The stream's reason is authoritative: it replaces an end reason an earlier ``ended``
        event gave (the server knows a call was transferred or hung up by the bot; a status
        callback only knows it completed). Adds no row to ``call_events``.
        """
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
        """One call with its events and turns, as :func:`read_call` returns it; None when
        unknown."""
        return read_call(self.path, call_sid)

    def list_calls(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest calls, newest first, as :func:`read_calls` returns them."""
        return read_calls(self.path, limit)
