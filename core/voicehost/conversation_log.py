"""A call's history and records, kept in the order things happened.

The conversation handler (:mod:`voicehost.conversation`) appends every turn of a call here:
caller finals, key presses, events and tool uses are finished when they happen; a bot
segment (its text up to the next action or tool use, :mod:`voicehost.conversation_speech`)
takes its place when its first sentence comes and gets its final text, what the caller heard,
once its sentences have played. Responders see the history at once (a segment as produced so
far until it is settled); the record store gets each turn once every turn before it is final,
so a turn that came while a segment was still playing is written after it. A caller's
final carries its timings (:class:`~voicehost.records.TurnTimings`): those known when it is
written go with it, the rest are set once the answer is over (:meth:`CallLog.set_timings`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import attrs

from voicehost.contracts import ConversationTurn
from voicehost.records import CallStore, TurnKind, TurnTimings
from voicehost.server.events import CallEvent

__all__ = ["CallLog", "LogEntry", "TurnObserver", "close_responder_stream", "record_call_event"]

log = logging.getLogger(__name__)

#: Told of every turn as it is written: ``(call_sid, role, kind, text, at_ms)``.
TurnObserver = Callable[[str, str, str, str, int], object]


@attrs.define(eq=False)
class LogEntry:
    """One turn waiting to be written to the records, in order."""

    role: str
    kind: TurnKind
    text: str
    at_ms: int
    ready: bool = True
    turn: ConversationTurn | None = None  # a bot segment's turn in the history
    timings: TurnTimings | None = None  # a caller final's timings
    written: concurrent.futures.Future[Any] | None = None  # the store's add_turn (its seq)


class CallLog:
    """A call's history (what responders see) and its records, kept in the same order.

    Args:
        call_sid: the call the records belong to.
        store: the record store, or None to keep no records.
        history: the call context's history list (appended to and revised in place).
        observers: called with ``(call_sid, role, kind, text, at_ms)`` for every turn as it
            is written (the live monitor), store or not; a failing observer is logged.
    """

    def __init__(
        self,
        call_sid: str,
        store: CallStore | None,
        history: list[ConversationTurn],
        observers: Sequence[TurnObserver] = (),
    ):
        self.call_sid = call_sid
        self.store = store
        self.history = history
        self.observers = tuple(observers)
        self.t0 = time.monotonic()
        self._pending: collections.deque[LogEntry] = collections.deque()

    def ms(self) -> int:
        """Milliseconds since the stream started."""
        return self.ms_at(time.monotonic())

    def ms_at(self, at: float) -> int:
        """``at`` (``time.monotonic()`` s) as ms since the stream started (0 at the least)."""
        return max(0, round((at - self.t0) * 1000))

    def add(
        self,
        role: str,
        kind: TurnKind,
        text: str,
        at_ms: int | None = None,
        turn: ConversationTurn | None = None,
        timings: TurnTimings | None = None,
    ) -> LogEntry:
        """A finished turn: ``turn`` (what responders see of it, if anything) goes into the
        history now, the record (with ``timings``, a caller final's) once the turns before
        it are written. Returns its entry (for :meth:`set_timings`)."""
        if turn is not None:
            self.history.append(turn)
        at = self.ms() if at_ms is None else at_ms
        entry = LogEntry(role, kind, text, at, timings=timings)
        self._pending.append(entry)
        self._write()
        return entry

    def set_timings(self, entry: LogEntry, timings: TurnTimings) -> None:
        """The final timings of ``entry``'s turn: written with it when it still waits, else
        set on its record."""
        entry.timings = timings
        if entry.written is not None and self.store is not None:
            self.store.set_turn_timings(self.call_sid, entry.written, timings)

    def reserve(
        self, kind: TurnKind, text: str, at_ms: int, role: Literal["bot", "caller"] = "bot"
    ) -> LogEntry:
        """A bot segment begins (its first sentence, ``text``), or a caller turn whose
        transcript is still coming (a speech-to-speech model transcribes after the turn):
        its turn takes its place in the history now; its record waits for :meth:`settle`."""
        turn = ConversationTurn(role, text)
        self.history.append(turn)
        entry = LogEntry(role, kind, text, at_ms, ready=False, turn=turn)
        self._pending.append(entry)
        return entry

    def revise(self, entry: LogEntry, text: str) -> None:
        """The segment's text so far (more sentences came), until it is settled."""
        new = ConversationTurn(entry.role, text)  # type: ignore[arg-type]
        self._swap(entry.turn, new)
        entry.turn, entry.text = new, text

    def settle(self, entry: LogEntry, text: str) -> None:
        """The segment's final text, what the caller heard; ``""`` drops it from the history
        and the records."""
        if text:
            self.revise(entry, text)
        else:
            self._swap(entry.turn, None)
            entry.turn, entry.text = None, ""
        entry.ready = True
        self._write()

    def close(self) -> None:
        """Write every turn still waiting (the call ended); an unsettled segment keeps its
        text so far."""
        for entry in self._pending:
            entry.ready = True
        self._write()

    def _swap(self, old: ConversationTurn | None, new: ConversationTurn | None) -> None:
        for i, turn in enumerate(self.history):
            if turn is old:
                if new is None:
                    del self.history[i]
                else:
                    self.history[i] = new
                return

    def _write(self) -> None:
        while self._pending and self._pending[0].ready:
            entry = self._pending.popleft()
            if not entry.text and entry.role != "event":
                continue
            for observer in self.observers:
                try:
                    observer(self.call_sid, entry.role, entry.kind, entry.text, entry.at_ms)
                except Exception:
                    log.exception("call %s: a turn observer failed", self.call_sid)
            if self.store is not None:
                entry.written = self.store.add_turn(
                    self.call_sid,
                    entry.role,  # type: ignore[arg-type]
                    entry.kind,
                    entry.text,
                    entry.at_ms,
                    timings=entry.timings,
                )


def record_call_event(store: CallStore | None, event: CallEvent) -> None:
    """Store a lifecycle event of a call (maybe one that never streamed); one the store
    refuses (an ``ended`` without a reason …) is logged and dropped."""
    if store is None:
        return
    try:
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
    except ValueError as exc:
        log.warning("call %s: call event %s not recorded: %s", event.call_sid, event.kind, exc)


async def close_responder_stream(stream: object) -> None:
    """``aclose()`` a responder's reply stream (if it has one); a responder that fails while
    closing is logged at debug level, never raised (it must not end the call)."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:
            log.debug("closing a responder stream failed", exc_info=True)
