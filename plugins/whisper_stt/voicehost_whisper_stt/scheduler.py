"""A bounded pool of inference threads that calls share fairly.

Every call (one STT session) gets a :class:`Ticket`: a FIFO of final-transcript jobs and one
slot for the freshest interim-transcript job. Worker threads pick the next job like this:

1. **Finals before partials** — a caller waiting for a reply matters more than an interim
   transcript.
2. **Round-robin over calls** — the next call after the one served last, so one talkative
   call cannot starve the others.
3. **One job per call at a time** — a call's jobs run in order (so its finals arrive in order
   and each can use the previous final as context).
4. **Stale work is dropped, not queued** — submitting a partial replaces a call's pending
   one, and a job whose ``stale()`` says so when its turn comes (a partial of an utterance
   that has ended, a speculative final the caller talked over) is skipped.

The scheduler is independent of any event loop: jobs report back through a callback run on
the worker thread, which a session forwards to its loop with ``call_soon_threadsafe``.
Workers are daemon threads, started on the first submit.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import attrs

logger = logging.getLogger(__name__)

JobKind = Literal["final", "partial"]


@attrs.frozen
class Outcome:
    """How a job ended: ``result`` or ``error``; ``skipped`` when dropped as stale or closed.

    ``queued_ms`` and ``run_ms`` are wall-clock (perf counter) milliseconds, for benchmarks.
    """

    result: Any = None
    error: BaseException | None = None
    skipped: bool = False
    queued_ms: float = 0.0
    run_ms: float = 0.0


@attrs.define(eq=False)
class Job:
    """One unit of inference.

    Attributes:
        kind: ``"final"`` or ``"partial"``.
        run: the blocking work, called on a worker thread.
        on_done: called on the worker thread with the :class:`Outcome` (also when skipped).
        stale: checked just before running; True skips it.
    """

    kind: JobKind
    run: Callable[[], Any]
    on_done: Callable[[Outcome], None]
    stale: Callable[[], bool] = lambda: False
    submitted: float = attrs.field(factory=time.perf_counter)


@attrs.define(eq=False)
class Ticket:
    """One call's place in the scheduler."""

    id: int
    finals: deque[Job] = attrs.field(factory=deque)
    partial: Job | None = None
    running: bool = False
    closed: bool = False


def _skip(job: Job) -> None:
    try:
        job.on_done(Outcome(skipped=True))
    except Exception:  # the callback belongs to a session; never kill the worker
        logger.exception("whisper: job callback failed")


class FairScheduler:
    """Runs jobs of many calls on ``workers`` threads, fairly (see module docstring)."""

    def __init__(self, workers: int = 1, name: str = "whisper") -> None:
        self.workers = workers
        self.name = name
        self._cond = threading.Condition()
        self._tickets: list[Ticket] = []
        self._next_index = 0
        self._ids = itertools.count(1)
        self._threads: list[threading.Thread] = []

    def open(self) -> Ticket:
        """Register a call; returns its ticket."""
        with self._cond:
            ticket = Ticket(next(self._ids))
            self._tickets.append(ticket)
            return ticket

    def close(self, ticket: Ticket) -> None:
        """Unregister a call: its pending partial is skipped; queued finals still run."""
        with self._cond:
            ticket.closed = True
            dropped, ticket.partial = ticket.partial, None
            self._forget_if_idle(ticket)
        if dropped is not None:
            _skip(dropped)

    def submit(self, ticket: Ticket, job: Job) -> None:
        """Queue ``job`` for ``ticket``'s call. A partial replaces (and skips) a pending one.

        Raises:
            RuntimeError: the ticket was closed.
        """
        replaced: Job | None = None
        with self._cond:
            if ticket.closed:
                raise RuntimeError("submit on a closed whisper session")
            if job.kind == "final":
                ticket.finals.append(job)
            else:
                replaced, ticket.partial = ticket.partial, job
            self._start_workers()
            self._cond.notify()
        if replaced is not None:
            _skip(replaced)

    @property
    def queued(self) -> int:
        """Jobs waiting (not running) across all calls."""
        with self._cond:
            return sum(len(t.finals) + (t.partial is not None) for t in self._tickets)

    # --- worker side ---------------------------------------------------------------------

    def _start_workers(self) -> None:
        while len(self._threads) < self.workers:
            thread = threading.Thread(
                target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _forget_if_idle(self, ticket: Ticket) -> None:
        if ticket.closed and not ticket.running and not ticket.finals and ticket in self._tickets:
            index = self._tickets.index(ticket)
            del self._tickets[index]
            if index < self._next_index:
                self._next_index -= 1

    def _pick(self) -> tuple[Ticket, Job] | None:
        """Next job by the policy above; called with the lock held."""
        count = len(self._tickets)
        for kind in ("final", "partial"):
            for offset in range(count):
                index = (self._next_index + offset) % count
                ticket = self._tickets[index]
                if ticket.running:
                    continue
                if kind == "final" and ticket.finals:
                    job = ticket.finals.popleft()
                elif kind == "partial" and ticket.partial is not None:
                    job, ticket.partial = ticket.partial, None
                else:
                    continue
                ticket.running = True
                self._next_index = (index + 1) % count
                return ticket, job
        return None

    def _work(self) -> None:
        while True:
            with self._cond:
                picked = self._pick()
                while picked is None:
                    self._cond.wait()
                    picked = self._pick()
            ticket, job = picked
            try:
                self._run(job)
            finally:
                with self._cond:
                    ticket.running = False
                    self._forget_if_idle(ticket)
                    self._cond.notify_all()

    @staticmethod
    def _run(job: Job) -> None:
        started = time.perf_counter()
        queued_ms = (started - job.submitted) * 1000
        if job.stale():
            _skip(job)
            return
        try:
            result = job.run()
        except Exception as exc:
            outcome = Outcome(error=exc, queued_ms=queued_ms)
        else:
            run_ms = (time.perf_counter() - started) * 1000
            outcome = Outcome(result=result, queued_ms=queued_ms, run_ms=run_ms)
        try:
            job.on_done(outcome)
        except Exception:
            logger.exception("whisper: job callback failed")
