"""The calls the fake REST API (:class:`voicehost.testing.twilio_rest.FakeTwilioRest`)
holds (:class:`FakeCall`: what was asked, what happened) and what answering one gives
(:class:`AnsweredCall`). Twilio's side of them is played by
:class:`voicehost.testing.twilio_rest_player.CallPlayer`.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from email.utils import formatdate
from typing import Any

import attrs

from voicehost.testing.twilio import WebhookReply
from voicehost.testing.twilio_stream import SimulatedCall

__all__ = ["FINAL_STATUSES", "AnsweredCall", "FakeCall"]

#: Statuses after which a call is over.
FINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


@attrs.define(eq=False)
class FakeCall:
    """One call the fake REST API created, and everything that happened to it.

    Attributes:
        sid / account_sid / to / from_: as created.
        url / method / twiml / application_sid: where its TwiML comes from (``Calls.json``).
        status_callback / status_callback_events: where and which progress events go.
        timeout / machine_detection: ``Timeout`` (s) and ``MachineDetection`` as sent.
        status: ``queued`` → ``ringing`` → ``in-progress`` → a final status.
        answered_by: ``AnsweredBy`` given to :meth:`CallPlayer.answer`.
        form: the ``Calls.json`` form as sent (every value of repeated keys).
        twimls: every TwiML the call got, in order: webhook answers and REST updates.
        updates: the form of each REST update (``Calls/{sid}.json``), in order.
        callbacks: ``(CallStatus, HTTP status voicehost answered)`` of each status callback.
        webhooks: each voice webhook request's ``(URL, params, reply)``.
        stream: the open Media Stream (None when there is none, or it was stopped).
        streams: every stream opened for the call.
        gather_action: the URL a pending ``<Gather>`` posts its result to (None: none).
        after_stream: the verbs after the open stream's ``</Connect>``.
    """

    sid: str
    account_sid: str
    to: str
    from_: str
    url: str = ""
    method: str = "POST"
    twiml: str = ""
    application_sid: str = ""
    status_callback: str = ""
    status_callback_events: tuple[str, ...] = ("completed",)
    timeout: int = 60
    machine_detection: str = ""
    status: str = "queued"
    direction: str = "outbound-api"
    answered_by: str = ""
    created_at: float = attrs.field(factory=time.time)
    answered_at: float | None = None
    ended_at: float | None = None
    form: dict[str, list[str]] = attrs.field(factory=dict)
    twimls: list[str] = attrs.field(factory=list)
    updates: list[dict[str, str]] = attrs.field(factory=list)
    callbacks: list[tuple[str, int]] = attrs.field(factory=list)
    webhooks: list[tuple[str, dict[str, str], WebhookReply]] = attrs.field(factory=list)
    stream: SimulatedCall | None = None
    streams: list[SimulatedCall] = attrs.field(factory=list)
    gather_action: str | None = None
    after_stream: list[ET.Element] = attrs.field(factory=list)
    _sequence: int = 0

    @property
    def over(self) -> bool:
        """True once the call has a final status."""
        return self.status in FINAL_STATUSES

    @property
    def statuses_posted(self) -> list[str]:
        """The ``CallStatus`` of each status callback sent, in order."""
        return [status for status, _ in self.callbacks]

    def finish_now(self, status: str) -> bool:
        """Give the call its final ``status`` unless it is already over; True if it was
        not (what follows, the stream stop and callback, is :meth:`CallPlayer.after_end`)."""
        if self.over:
            return False
        self.status = status
        self.ended_at = time.time()
        return True

    def next_sequence(self) -> str:
        """The status callback's ``SequenceNumber`` (0, 1, 2 …)."""
        value = self._sequence
        self._sequence += 1
        return str(value)

    def to_json(self) -> dict[str, Any]:
        """The call as Twilio's REST API answers it (wire-protocols.md §1.7)."""
        duration = None
        if self.ended_at is not None and self.answered_at is not None:
            duration = str(int(self.ended_at - self.answered_at))
        base = f"/2010-04-01/Accounts/{self.account_sid}/Calls/{self.sid}"
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "to": self.to,
            "to_formatted": self.to,
            "from": self.from_,
            "from_formatted": self.from_,
            "status": self.status,
            "direction": self.direction,
            "answered_by": self.answered_by or None,
            "date_created": formatdate(self.created_at, usegmt=True),
            "date_updated": formatdate(time.time(), usegmt=True),
            "start_time": formatdate(self.answered_at, usegmt=True) if self.answered_at else None,
            "end_time": formatdate(self.ended_at, usegmt=True) if self.ended_at else None,
            "duration": duration,
            "parent_call_sid": None,
            "price": None,
            "price_unit": "USD",
            "uri": base + ".json",
            "subresource_uris": {"streams": base + "/Streams.json"},
        }


@attrs.frozen
class AnsweredCall:
    """What :meth:`CallPlayer.answer` saw.

    Attributes:
        reply: voicehost's answer to the voice webhook (status, TwiML text).
        stream: the Media Stream opened for a ``<Connect><Stream>`` answer, else None.
    """

    reply: WebhookReply
    stream: SimulatedCall | None

    @property
    def twiml(self) -> str:
        return self.reply.text
