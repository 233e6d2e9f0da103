"""Call lifecycle events: what happened to a call, whether or not it ever streamed.

Twilio reports a call's progress in status callbacks (``CallStatus`` = ``queued``,
``initiated``, ``ringing``, ``in-progress``, ``completed``, ``busy``, ``failed``,
``no-answer``, ``canceled``; wire-protocols.md §1.7) and, for calls placed with
``MachineDetection``, ``AnsweredBy`` on the voice webhook. voicehost normalises them, together
with what it sees on the Media Streams socket, into four :class:`CallEvent` kinds, handed to
:meth:`voicehost.server.CallHandler.on_call_event`:

==============  ===========================================================================
``initiated``   Twilio started placing an outbound call (``initiated`` / ``queued``)
``ringing``     the far end is ringing
``answered``    the call was answered (``in-progress``); ``answered_by`` from machine
                detection (``human``, ``machine_end_beep``, ``fax``, ``unknown`` …) or ``""``
``ended``       the call is over; ``reason`` is one of :data:`END_REASONS`
==============  ===========================================================================

End reasons: ``completed``, ``busy``, ``no-answer``, ``failed``, ``canceled`` (Twilio's
final ``CallStatus`` of a call that did not stream), ``caller-hangup`` (the caller hung up
while streaming: Twilio's ``stop``, or ``completed`` while the stream was live),
``bot-hangup`` (``call.hangup()``), ``transferred`` (``call.transfer()``), ``max-duration``
(``[server] max_call_duration_s``), ``idle`` (``[server] stream_idle_timeout_s``),
``shutdown`` (the server stopped), ``error`` (the stream broke, or the socket closed without
Twilio's ``stop``) and ``rejected`` (``[twilio] allowed_callers`` / ``blocked_callers``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

import attrs

__all__ = [
    "BOT_HANGUP",
    "CALLER_HANGUP",
    "END_REASONS",
    "ERROR",
    "IDLE",
    "MAX_DURATION",
    "REJECTED",
    "SHUTDOWN",
    "TERMINAL_STATUSES",
    "TRANSFERRED",
    "CallEvent",
    "EventKind",
    "event_from_status",
]

EventKind = Literal["initiated", "ringing", "answered", "ended"]

CALLER_HANGUP = "caller-hangup"
BOT_HANGUP = "bot-hangup"
TRANSFERRED = "transferred"
MAX_DURATION = "max-duration"
IDLE = "idle"
SHUTDOWN = "shutdown"
ERROR = "error"
REJECTED = "rejected"

#: ``CallStatus`` values after which a call is over; each is also the end reason of a call
#: that ended so without streaming.
TERMINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})

#: Every end reason voicehost itself gives (a handler's own ``hangup(reason)`` may add more).
END_REASONS = TERMINAL_STATUSES | {
    CALLER_HANGUP,
    BOT_HANGUP,
    TRANSFERRED,
    MAX_DURATION,
    IDLE,
    SHUTDOWN,
    ERROR,
    REJECTED,
}

_STATUS_KINDS: Mapping[str, EventKind] = {
    "queued": "initiated",
    "initiated": "initiated",
    "ringing": "ringing",
    "in-progress": "answered",
    "answered": "answered",
}


@attrs.frozen
class CallEvent:
    """One lifecycle event of a call.

    Attributes:
        call_sid: Twilio call SID (``CA…``).
        kind: ``initiated`` | ``ringing`` | ``answered`` | ``ended``.
        reason: for ``ended``, one of :data:`END_REASONS` (or a handler's own); else ``""``.
        answered_by: for ``answered``, Twilio's ``AnsweredBy`` (machine detection) or ``""``.
        direction: ``inbound`` | ``outbound-api`` | ``outbound-dial`` | ``""`` (unknown).
        from_ / to: the call's numbers, ``""`` when unknown.
        at: when it happened, wall-clock seconds since the epoch.
    """

    call_sid: str
    kind: EventKind
    reason: str = ""
    answered_by: str = ""
    direction: str = ""
    from_: str = ""
    to: str = ""
    at: float = attrs.field(factory=time.time)

    def to_json(self) -> dict[str, Any]:
        """``{"call_sid", "event", "reason", "answered_by", "direction", "from", "to", "at"}``."""
        return {
            "call_sid": self.call_sid,
            "event": self.kind,
            "reason": self.reason,
            "answered_by": self.answered_by,
            "direction": self.direction,
            "from": self.from_,
            "to": self.to,
            "at": self.at,
        }


def event_from_status(form: Mapping[str, Any]) -> CallEvent | None:
    """The event a status callback (or voice webhook) form reports, or None for a
    ``CallStatus`` that is not a lifecycle step (missing or unknown).

    ``completed`` / ``busy`` / ``failed`` / ``no-answer`` / ``canceled`` become ``ended``
    with that status as the reason; the caller of this function turns ``completed`` of a
    call that was streaming into ``caller-hangup``.
    """
    status = str(form.get("CallStatus", ""))
    fields = {
        "call_sid": str(form.get("CallSid", "")),
        "direction": str(form.get("Direction", "")),
        "from_": str(form.get("From", "")),
        "to": str(form.get("To", "")),
    }
    if status in TERMINAL_STATUSES:
        return CallEvent(kind="ended", reason=status, **fields)
    kind = _STATUS_KINDS.get(status)
    if kind is None:
        return None
    answered_by = str(form.get("AnsweredBy", "")) if kind == "answered" else ""
    return CallEvent(kind=kind, answered_by=answered_by, **fields)
