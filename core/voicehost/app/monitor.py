"""The live call monitor's state: what ``/monitor`` shows.

:class:`MonitorHub` keeps the calls live on this server (caller, direction, start time, the
transcript as it happens, per-turn latency, barge-ins, key presses) and the last
:data:`RECENT_CALLS` ended ones, and pushes every change to its subscribers (the
``GET /monitor/events`` streams of :mod:`voicehost.app.monitor_routes`) as JSON events.

Feeding it:

* :class:`~voicehost.app.monitor_handler.MonitoringHandler` wraps the real
  :class:`~voicehost.server.CallHandler` (the conversation's
  :class:`~voicehost.conversation.ResponderCallHandler`): every callback is passed on
  unchanged, and the hub hears of the call's start and end, interim and final caller
  transcripts and key presses. The hub is told first, so a caller line shows while
  the responder is still thinking; it never raises into the call.
* The bot's side (greeting, replies, tool calls, ``send_dtmf``, transfers, barge-ins) comes
  from the conversation through :meth:`MonitorHub.on_turn` (role ``bot`` or ``event``, the
  record kinds of :data:`voicehost.records.TurnKind`).

Publishing never blocks and never awaits: each subscriber has a bounded queue
(:data:`QUEUE_LIMIT` events); one that falls that far behind (a stalled browser) is dropped
(its stream ends; an ``EventSource`` reconnects and starts again from a snapshot). Nothing
is serialized while nobody watches.

Events (one JSON object each, ``type`` first):

* ``snapshot`` ``{"now": epoch s, "live": [call…], "recent": [call…]}`` (recent newest
  first), the first event of every subscription;
* ``call_start`` ``{"call": call}``; ``call_end`` ``{"call": call}`` (with ``ended_at``,
  ``end_reason``; it moves to the recent calls);
* ``interim`` ``{"call_sid", "text"}`` (the caller's words so far; ``""`` clears them);
* ``line`` ``{"call_sid", "line": line, "barge_ins", "keys"}``.

A call is ``{"call_sid", "from", "to", "direction", "answered_by", "started_at" (epoch s),
"ended_at", "end_reason", "interim", "barge_ins", "keys", "lines": [line…]}``; a line is
``{"role": caller|bot|event, "kind", "text", "at_ms" (ms since the call started),
"latency_ms" (bot lines: ms from the caller's final transcript before it, else null)}``.
Lines are kept in ``at_ms`` order (a bot reply is reported once it has played, after a
caller line that came while it played).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import attrs

log = logging.getLogger(__name__)

__all__ = [
    "MAX_LINES",
    "MAX_TEXT",
    "QUEUE_LIMIT",
    "RECENT_CALLS",
    "MonitorHub",
    "MonitorLine",
    "MonitoredCall",
    "Subscriber",
]

#: Ended calls kept for the page's "recent calls".
RECENT_CALLS = 20
#: Events one subscriber may have waiting before it is dropped.
QUEUE_LIMIT = 256
#: Transcript lines kept per call (the oldest go first).
MAX_LINES = 500
#: Characters kept of one line or interim text.
MAX_TEXT = 2000


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


@attrs.define
class MonitorLine:
    """One transcript line: ``role`` caller/bot/event, ``kind`` as in the records (``final``,
    ``greeting``, ``reply``, ``dtmf``, ``barge_in`` …), ``at_ms`` since the call started,
    ``latency_ms`` for a bot line answering a caller's final transcript."""

    role: str
    kind: str
    text: str
    at_ms: int
    latency_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "kind": self.kind,
            "text": self.text,
            "at_ms": self.at_ms,
            "latency_ms": self.latency_ms,
        }


@attrs.define
class MonitoredCall:
    """A call as the monitor sees it (see the module docstring for its JSON)."""

    call_sid: str
    from_: str = ""
    to: str = ""
    direction: str = ""
    answered_by: str = ""
    started_at: float = 0.0  # epoch s
    t0: float = 0.0  # monotonic s at the start: at_ms of the caller's lines
    lines: list[MonitorLine] = attrs.field(factory=list)
    interim: str = ""
    barge_ins: int = 0
    keys: str = ""
    ended_at: float | None = None
    end_reason: str | None = None

    def add(self, line: MonitorLine) -> None:
        """Insert ``line`` in ``at_ms`` order (after lines of the same time)."""
        index = bisect.bisect_right([x.at_ms for x in self.lines], line.at_ms)
        self.lines.insert(index, line)
        if len(self.lines) > MAX_LINES:
            del self.lines[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "call_sid": self.call_sid,
            "from": self.from_,
            "to": self.to,
            "direction": self.direction,
            "answered_by": self.answered_by,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "end_reason": self.end_reason,
            "interim": self.interim,
            "barge_ins": self.barge_ins,
            "keys": self.keys,
            "lines": [line.to_json() for line in self.lines],
        }


class Subscriber:
    """One watcher's bounded queue of encoded events (``data: {json}\\n\\n`` bytes).

    Attributes:
        dropped: it fell :data:`QUEUE_LIMIT` events behind; nothing more is queued.
        closed: the hub closed (server shutdown).
    """

    def __init__(self, limit: int = QUEUE_LIMIT) -> None:
        self.limit = limit
        self.dropped = False
        self.closed = False
        self._items: collections.deque[bytes] = collections.deque()
        self._ready = asyncio.Event()

    @property
    def finished(self) -> bool:
        """Dropped or closed: its stream should end."""
        return self.dropped or self.closed

    def push(self, item: bytes) -> bool:
        """Queue ``item``; False (and the subscriber is dropped) when it is full."""
        if self.finished:
            return False
        if len(self._items) >= self.limit:
            self.dropped = True
            self._items.clear()
            self._ready.set()
            return False
        self._items.append(item)
        self._ready.set()
        return True

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def get(self, timeout_s: float) -> bytes | None:
        """The next event, or None after ``timeout_s`` seconds without one (send a
        heartbeat) or once :attr:`finished`."""
        if not self._items and not self.finished:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout_s)
            except TimeoutError:
                return None
        if self.finished or not self._items:
            return None
        return self._items.popleft()


class MonitorHub:
    """Live and recent calls, and the subscribers watching them.

    Args:
        recent: ended calls kept.
        queue_limit: events a subscriber may fall behind before it is dropped.
        clock: wall-clock time, epoch s (``started_at`` / ``ended_at``).
        monotonic: monotonic time, s (``at_ms`` of the caller's lines).
    """

    def __init__(
        self,
        *,
        recent: int = RECENT_CALLS,
        queue_limit: int = QUEUE_LIMIT,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.live: dict[str, MonitoredCall] = {}
        self.recent: collections.deque[MonitoredCall] = collections.deque(maxlen=recent)
        self.queue_limit = queue_limit
        self._clock = clock
        self._monotonic = monotonic
        self._subscribers: set[Subscriber] = set()

    # --- watching --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The ``snapshot`` event: every live call and the recent ones, newest first."""
        return {
            "type": "snapshot",
            "now": self._clock(),
            "live": [call.to_json() for call in self.live.values()],
            "recent": [call.to_json() for call in reversed(self.recent)],
        }

    def subscribe(self) -> Subscriber:
        """A new subscriber whose first event is the snapshot."""
        subscriber = Subscriber(self.queue_limit)
        subscriber.push(_encode(self.snapshot()))
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    @property
    def subscribers(self) -> int:
        """How many subscribers are watching."""
        return len(self._subscribers)

    def close(self) -> None:
        """End every subscription (server shutdown)."""
        for subscriber in self._subscribers:
            subscriber.close()
        self._subscribers.clear()

    def _publish(self, event: dict[str, Any]) -> None:
        if not self._subscribers:
            return
        item = _encode(event)
        for subscriber in list(self._subscribers):
            if not subscriber.push(item):
                log.info("monitor: a subscriber fell %d events behind; dropped", self.queue_limit)
                self._subscribers.discard(subscriber)

    # --- feeding ---------------------------------------------------------------------------

    def call_started(
        self,
        call_sid: str,
        *,
        from_: str = "",
        to: str = "",
        direction: str = "",
        answered_by: str = "",
    ) -> None:
        """A call's stream started."""
        call = MonitoredCall(
            call_sid,
            from_=from_,
            to=to,
            direction=direction,
            answered_by=answered_by,
            started_at=self._clock(),
            t0=self._monotonic(),
        )
        self.live[call_sid] = call
        self._publish({"type": "call_start", "call": call.to_json()})

    def call_ended(self, call_sid: str, reason: str) -> None:
        """A live call ended: it moves to the recent calls."""
        call = self.live.pop(call_sid, None)
        if call is None:
            return
        call.ended_at = self._clock()
        call.end_reason = reason
        call.interim = ""
        self.recent.append(call)
        self._publish({"type": "call_end", "call": call.to_json()})

    def on_partial(self, call_sid: str, text: str) -> None:
        """The caller's words so far (interim transcript)."""
        call = self.live.get(call_sid)
        if call is None:
            return
        call.interim = _clip(text)
        self._publish({"type": "interim", "call_sid": call_sid, "text": call.interim})

    def on_transcript(self, call_sid: str, text: str) -> None:
        """A final transcript of the caller (blank ones are ignored); clears the interim."""
        call = self.live.get(call_sid)
        if call is None or not text.strip():
            return
        if call.interim:
            call.interim = ""
            self._publish({"type": "interim", "call_sid": call_sid, "text": ""})
        self._add(call, MonitorLine("caller", "final", _clip(text.strip()), self._ms(call)))

    def on_dtmf(self, call_sid: str, digits: str) -> None:
        """The caller pressed ``digits``."""
        call = self.live.get(call_sid)
        if call is None or not digits:
            return
        call.keys = (call.keys + digits)[-64:]
        self._add(call, MonitorLine("caller", "dtmf", _clip(digits), self._ms(call)))

    def on_turn(
        self,
        call_sid: str,
        role: str,
        kind: str,
        text: str,
        at_ms: int,
        latency_ms: int | None = None,
    ) -> None:
        """A turn of the conversation (bot text, tool use, ``send_dtmf``, transfer,
        ``barge_in`` …) at ``at_ms`` ms since the call started, as the records have it.

        A ``barge_in`` event counts a barge-in. A bot ``greeting``/``reply`` gets
        ``latency_ms`` when given, else the ms since the caller's final transcript just
        before it. Caller lines (role ``caller``) and ``dtmf`` events are ignored: the
        :class:`~voicehost.app.monitor_handler.MonitoringHandler` reports those as they
        happen. The call may have just
        ended (turns are written as it ends).
        """
        if role == "caller" or (role == "event" and kind == "dtmf") or not text:
            return
        call = self.live.get(call_sid) or next(
            (c for c in self.recent if c.call_sid == call_sid), None
        )
        if call is None:
            return
        if role == "event" and kind == "barge_in":
            call.barge_ins += 1
        if role == "bot" and latency_ms is None and kind in ("greeting", "reply"):
            latency_ms = _latency(call.lines, at_ms)
        self._add(call, MonitorLine(role, kind, _clip(text), at_ms, latency_ms))

    def _add(self, call: MonitoredCall, line: MonitorLine) -> None:
        call.add(line)
        self._publish(
            {
                "type": "line",
                "call_sid": call.call_sid,
                "line": line.to_json(),
                "barge_ins": call.barge_ins,
                "keys": call.keys,
            }
        )

    def _ms(self, call: MonitoredCall) -> int:
        return round((self._monotonic() - call.t0) * 1000)


def _latency(lines: list[MonitorLine], at_ms: int) -> int | None:
    """ms from the caller's final transcript that a bot line at ``at_ms`` answers (the last
    caller or bot line before it, when it is a caller final), else None."""
    for line in reversed(lines):
        if line.at_ms > at_ms or line.role == "event":
            continue
        if line.role == "caller" and line.kind == "final":
            return max(0, at_ms - line.at_ms)
        return None
    return None


def _encode(event: dict[str, Any]) -> bytes:
    """One server-sent event: ``data: <json>`` and a blank line (JSON has no raw newline)."""
    return b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n"
