"""Call records in PostgreSQL (``[records] url = "postgresql://…"``), shared by every instance
of a deployment: :class:`PgCallStore` has the write and read methods of
:class:`voicehost.records.CallStore`, so the conversation, the HTTP API and ``voicehost calls``
do not care which one they have.

Writes never block a call, and a slow or failing database loses nothing silently:

* the write methods only queue a job (one writer thread, one psycopg connection, jobs in
  order, each committed in its own transaction) and return a
  :class:`concurrent.futures.Future`;
* when the database cannot be reached (or the connection breaks), the job stays at the head
  of the queue and is retried, with a back-off from 0.5 s to 5 s, until it is written; the
  outage is logged once when it starts (naming the call SID whose write failed and how many
  writes wait) and once when it ends;
* a job the database refuses for another reason (a bad value) is logged with its call SID and
  dropped; two instances racing for a ``seq`` retry;
* more than :data:`MAX_QUEUED` waiting jobs, or jobs still waiting ``close_timeout_s`` after
  :meth:`PgCallStore.close`, are logged one per call SID and dropped.

The schema is created and migrated (:mod:`voicehost.records.pg_schema`) on the first
connection. ``open`` checks the database at start-up: an unreachable database or a bad URL is
a :class:`~voicehost.errors.ConfigError` then, never later.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from voicehost.errors import ConfigError
from voicehost.records.pg_read import read_call, read_calls
from voicehost.records.pg_schema import SchemaTooNew, migrate
from voicehost.records.schema import iso_from_epoch, utc_now_iso
from voicehost.records.source import redacted
from voicehost.records.store import EVENT_NAMES, TURN_KINDS, TURN_ROLES, EventName
from voicehost.records.timings import TIMING_FIELDS, TurnTimings

__all__ = ["MAX_QUEUED", "PgCallStore"]

logger = logging.getLogger(__name__)

#: Jobs waiting beyond this many are dropped (logged with their call SID).
MAX_QUEUED = 100_000
_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
_SEQ_RETRIES = 5
_CONNECT_TIMEOUT_S = 3

Job = tuple[Callable[[psycopg.Connection[Any]], Any], concurrent.futures.Future[Any], str, str]


class PgCallStore:
    """The call record store on PostgreSQL: one writer thread, queued and retried writes.

    Args:
        url: ``postgresql://user:password@host:port/dbname``.
        close_timeout_s: how long :meth:`close` waits for queued writes, s.
        check: connect (and migrate) before returning.

    Raises:
        ConfigError: ``check`` and the database cannot be reached, refuses us, or is newer
            than this code.

    Attributes:
        path: the URL (what the read functions and the HTTP API take as the records source).
        pending: jobs not yet written.
        available: False while the database cannot be reached.
    """

    def __init__(self, url: str, *, close_timeout_s: float = 10.0, check: bool = True) -> None:
        self.path = url
        self.url = url
        self.close_timeout_s = close_timeout_s
        self.available = True
        self._jobs: collections.deque[Job | None] = collections.deque()
        self._ready = threading.Condition()
        self._closed = False
        self._give_up = False
        self._conn: psycopg.Connection[Any] | None = None
        if check:
            try:
                self._connect()
            except (psycopg.Error, SchemaTooNew) as exc:
                raise ConfigError(f"[records] url {redacted(url)}: cannot open: {exc}") from None
        self._thread = threading.Thread(
            target=self._run, name=f"voicehost-records:{redacted(url)}", daemon=True
        )
        self._thread.start()

    # -- writer thread -------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S)
            try:
                migrate(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None

    def _next(self) -> Job | None:
        with self._ready:
            while not self._jobs:
                self._ready.wait()
            return self._jobs[0]

    def _run(self) -> None:
        try:
            while True:
                job = self._next()
                if job is None:
                    return
                self._write(job)
                with self._ready:
                    self._jobs.popleft()
        finally:
            self._drop_connection()

    def _write(self, job: Job) -> None:
        fn, future, call_sid, what = job
        if not future.set_running_or_notify_cancel():
            return
        failures = 0
        seq_clashes = 0
        while True:
            if self._give_up:
                self._lost(job, "the store closed before the database came back")
                return
            try:
                conn = self._connect()
                with conn.transaction():
                    result = fn(conn)
            except psycopg.errors.UniqueViolation as exc:  # another instance took the seq
                seq_clashes += 1
                if seq_clashes <= _SEQ_RETRIES:
                    continue
                self._lost(job, str(exc))
                return
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._drop_connection()
                if self.available:
                    self.available = False
                    logger.warning(
                        "call records: PostgreSQL at %s unreachable (writing %s of call %s: "
                        "%s); %d writes queued, retrying",
                        redacted(self.url),
                        what,
                        call_sid,
                        str(exc).strip().splitlines()[0] if str(exc).strip() else exc,
                        len(self._jobs),
                    )
                self._sleep(_BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)])
                failures += 1
                continue
            except Exception as exc:  # the database refused the job itself: not retried
                logger.error("call records: %s of call %s not stored: %s", what, call_sid, exc)
                future.set_exception(exc)
                return
            if not self.available:
                self.available = True
                logger.warning(
                    "call records: PostgreSQL at %s is back; %d queued writes go on",
                    redacted(self.url),
                    len(self._jobs),
                )
            future.set_result(result)
            return

    def _sleep(self, seconds: float) -> None:
        with self._ready:
            self._ready.wait_for(lambda: self._give_up, timeout=seconds)

    def _lost(self, job: Job, why: str) -> None:
        _fn, future, call_sid, what = job
        logger.error("call records: %s of call %s NOT stored: %s", what, call_sid, why)
        if not future.done():
            future.set_exception(RuntimeError(f"{what} of {call_sid} not stored: {why}"))

    def _submit(
        self, call_sid: str, what: str, fn: Callable[[psycopg.Connection[Any]], Any]
    ) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if self._closed:
            future.set_exception(RuntimeError("call store is closed"))
            return future
        job: Job = (fn, future, call_sid, what)
        with self._ready:
            if len(self._jobs) >= MAX_QUEUED:
                self._lost(job, f"{MAX_QUEUED} writes already wait for the database")
                return future
            self._jobs.append(job)
            self._ready.notify_all()
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
        """As :meth:`voicehost.records.CallStore.start_call`."""
        started = started_at or utc_now_iso()

        def write(conn: psycopg.Connection[Any]) -> None:
            conn.execute(
                "INSERT INTO calls (call_sid, stream_sid, from_number, to_number, started_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (call_sid) DO UPDATE SET"
                " stream_sid = excluded.stream_sid,"
                " from_number = COALESCE(NULLIF(excluded.from_number, ''), calls.from_number),"
                " to_number = COALESCE(NULLIF(excluded.to_number, ''), calls.to_number)",
                (call_sid, stream_sid, from_number, to_number, started),
            )

        return self._submit(call_sid, "the call's start", write)

    def add_turn(
        self,
        call_sid: str,
        role: str,
        kind: str,
        text: str,
        at_ms: int,
        *,
        timings: TurnTimings | None = None,
    ) -> concurrent.futures.Future[Any]:
        """As :meth:`voicehost.records.CallStore.add_turn` (the future resolves to the
        turn's ``seq``).

        Raises:
            ValueError: ``role`` or ``kind`` is unknown (at once).
        """
        if role not in TURN_ROLES:
            raise ValueError(f"turn role must be one of {sorted(TURN_ROLES)}, got {role!r}")
        if kind not in TURN_KINDS:
            raise ValueError(f"turn kind must be one of {sorted(TURN_KINDS)}, got {kind!r}")
        times = timings.values() if timings is not None else (None,) * len(TIMING_FIELDS)

        def write(conn: psycopg.Connection[Any]) -> int:
            row = conn.execute(
                "INSERT INTO turns (call_sid, seq, role, kind, text, at_ms, speech_end_ms,"
                " final_ms, first_token_ms, first_audio_ms) VALUES"
                " (%s, (SELECT COALESCE(MAX(seq), 0) + 1 FROM turns WHERE call_sid = %s),"
                " %s, %s, %s, %s, %s, %s, %s, %s) RETURNING seq",
                (call_sid, call_sid, role, kind, text, max(0, int(at_ms)), *times),
            ).fetchone()
            assert row is not None
            return int(row[0])

        return self._submit(call_sid, f"a {kind} turn", write)

    def set_turn_timings(
        self,
        call_sid: str,
        seq: int | concurrent.futures.Future[Any],
        timings: TurnTimings,
    ) -> concurrent.futures.Future[Any]:
        """As :meth:`voicehost.records.CallStore.set_turn_timings`."""

        def write(conn: psycopg.Connection[Any]) -> None:
            number = seq.result() if isinstance(seq, concurrent.futures.Future) else seq
            conn.execute(
                "UPDATE turns SET speech_end_ms = %s, final_ms = %s, first_token_ms = %s,"
                " first_audio_ms = %s WHERE call_sid = %s AND seq = %s",
                (*timings.values(), call_sid, number),
            )

        return self._submit(call_sid, "turn timings", write)

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
        """As :meth:`voicehost.records.CallStore.record_event`.

        Raises:
            ValueError: ``event`` is unknown, or an ``ended`` event has no reason (at once).
        """
        if event not in EVENT_NAMES:
            raise ValueError(f"call event must be one of {sorted(EVENT_NAMES)}, got {event!r}")
        if event == "ended" and not reason:
            raise ValueError("an 'ended' call event needs a reason")
        when = utc_now_iso() if at is None else iso_from_epoch(at)

        def write(conn: psycopg.Connection[Any]) -> None:
            conn.execute(
                "INSERT INTO calls (call_sid, from_number, to_number, direction, started_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (call_sid) DO UPDATE SET"
                " from_number = COALESCE(NULLIF(calls.from_number, ''), excluded.from_number),"
                " to_number = COALESCE(NULLIF(calls.to_number, ''), excluded.to_number),"
                " direction = COALESCE(NULLIF(calls.direction, ''), excluded.direction),"
                " started_at = LEAST(calls.started_at, excluded.started_at)",
                (call_sid, from_number, to_number, direction, when),
            )
            conn.execute(
                "INSERT INTO call_events (call_sid, seq, event, reason, answered_by, at) VALUES"
                " (%s, (SELECT COALESCE(MAX(seq), 0) + 1 FROM call_events WHERE call_sid = %s),"
                " %s, %s, %s, %s)",
                (call_sid, call_sid, event, reason, answered_by, when),
            )
            if event == "answered" and answered_by:
                conn.execute(
                    "UPDATE calls SET answered_by = %s WHERE call_sid = %s",
                    (answered_by, call_sid),
                )
            elif event == "ended":
                conn.execute(
                    "UPDATE calls SET ended_at = %s, end_reason = %s"
                    " WHERE call_sid = %s AND end_reason IS NULL",
                    (when, reason, call_sid),
                )

        return self._submit(call_sid, f"the {event} event", write)

    def end_call(
        self, call_sid: str, reason: str, *, ended_at: str | None = None
    ) -> concurrent.futures.Future[Any]:
        """As :meth:`voicehost.records.CallStore.end_call`."""
        ended = ended_at or utc_now_iso()

        def write(conn: psycopg.Connection[Any]) -> None:
            conn.execute(
                "UPDATE calls SET ended_at = %s, end_reason = %s WHERE call_sid = %s",
                (ended, reason, call_sid),
            )

        return self._submit(call_sid, "the call's end", write)

    async def flush(self) -> None:
        """Wait (without blocking the loop) until every write queued so far is done."""
        await asyncio.wrap_future(self._submit("-", "a flush", lambda conn: None))

    def close(self) -> None:
        """Write what is queued (for at most ``close_timeout_s``; what is left then is
        logged with its call SIDs), then stop the writer thread. Idempotent; blocks."""
        if self._closed:
            return
        self._closed = True
        with self._ready:
            self._jobs.append(None)
            self._ready.notify_all()
        self._thread.join(self.close_timeout_s)
        if self._thread.is_alive():
            with self._ready:
                self._give_up = True
                self._ready.notify_all()
            self._thread.join(_CONNECT_TIMEOUT_S + 2)
            with self._ready:
                left = [job for job in self._jobs if job is not None]
                self._jobs.clear()
            for job in left:
                self._lost(job, "the store closed before the database came back")

    async def aclose(self) -> None:
        """:meth:`close` off the event loop."""
        await asyncio.to_thread(self.close)

    # -- reads (any thread) -----------------------------------------------------------------
    def get_call(self, call_sid: str) -> dict[str, Any] | None:
        """One call with its events and turns (:func:`voicehost.records.read_call`)."""
        return read_call(self.url, call_sid)

    def list_calls(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest calls, newest first (:func:`voicehost.records.read_calls`)."""
        return read_calls(self.url, limit)

    @property
    def pending(self) -> int:
        """Jobs queued or being written."""
        return len(self._jobs)
