"""The call server's live state behind one small interface: stream tokens, the voice webhook's
call data and the registry of live calls.

The transport (:mod:`voicehost.server.webhook`, :mod:`voicehost.server.media_stream`) reaches
this state only through :class:`LiveCallState`. :class:`MemoryLiveState` keeps it in this
process, which is right for one instance; a shared store (Redis: ``SET NX PX`` for a claim,
``GETDEL`` for a token, a hash with ``EXPIRE`` for a call) implements the same protocol so
that several instances can serve one phone number, without touching the transport. Every
method is a coroutine so that a network store fits; none of them blocks the event loop.

What each piece is for:

* **stream tokens** tie a Media Streams socket to a signed voice webhook
  (:mod:`voicehost.server.tokens`): issued by the webhook, consumed once by the socket's
  ``start``.
* **call data** (:class:`CallRecord`): what the voice webhook said about a call (from, to,
  direction, status), read when its stream starts and updated by status callbacks.
* **the live-call registry**: which call SIDs have a live stream, and on which instance. A
  call SID is claimed atomically when its stream starts (:meth:`LiveCallState.mark_live`), so
  a second stream for the same call is refused even when it reaches another instance, and a
  replayed webhook for a live call issues no token.

Times are seconds. Memory state uses ``time.monotonic`` for expiry (injectable for tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs

from voicehost.errors import VoicehostError
from voicehost.server.tokens import StreamTokens

__all__ = [
    "DEFAULT_RECORD_TTL_S",
    "CallForwarder",
    "CallRecord",
    "LiveCallState",
    "LiveStateUnavailable",
    "MemoryLiveState",
    "StreamStart",
]

#: How long the webhook's data of a call is kept when no stream claims it, s.
DEFAULT_RECORD_TTL_S = 3600.0


class LiveStateUnavailable(VoicehostError):
    """The shared live state (Redis) cannot be reached right now. The transport answers a
    request that needs it with 503 (a stream ``start`` is closed 1013); calls already live
    go on, their state is local."""


class CallForwarder(Protocol):
    """Hands an action on a call to the instance that holds the call's live stream (see
    :mod:`voicehost.server.redis_actions`). A single instance has none."""

    async def forward(self, call_sid: str, action: str, args: Mapping[str, Any]) -> bool:
        """Run ``action`` (``hangup`` | ``status`` | ``transfer``) with ``args`` on the
        instance that holds ``call_sid``, and wait until it has acted.

        Returns:
            True when another instance holds the call and acted; False when no other
            instance holds it (the caller acts itself).

        Raises:
            CallControlError: the owner refused the action or did not answer in time.
        """
        ...


@attrs.frozen
class CallRecord:
    """What the voice webhook told us about a call (before and while it streams).

    Attributes:
        call_sid / account_sid: Twilio ids (``CA…`` / ``AC…``).
        from_ / to / direction: the webhook's ``From``, ``To`` and ``Direction``.
        status: the last ``CallStatus`` (webhook or status callback).
        answered_by: ``AnsweredBy`` of machine detection, ``""`` when not asked for.
        stream_outcome: ``""`` until the call's stream ended, then its end reason (the
            webhook's ``after-stream`` step reads it to choose ``<Hangup/>`` or the
            ``<Say>``/``<Gather>`` fallback).
        created: when the webhook arrived, wall-clock seconds since the epoch (comparable
            across instances, unlike a monotonic clock).
    """

    call_sid: str
    account_sid: str = ""
    from_: str = ""
    to: str = ""
    direction: str = ""
    status: str = ""
    answered_by: str = ""
    stream_outcome: str = ""
    created: float = attrs.field(factory=time.time)

    @classmethod
    def from_form(cls, form: Mapping[str, Any]) -> CallRecord:
        """A record from the voice webhook's form parameters (missing ones are ``""``)."""
        return cls(
            call_sid=str(form.get("CallSid", "")),
            account_sid=str(form.get("AccountSid", "")),
            from_=str(form.get("From", "")),
            to=str(form.get("To", "")),
            direction=str(form.get("Direction", "")),
            status=str(form.get("CallStatus", "")),
            answered_by=str(form.get("AnsweredBy", "")),
        )

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (``from_`` as ``from_``); :meth:`from_json`
        reverses it."""
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CallRecord:
        """A record from :meth:`to_json`'s dict (unknown keys are ignored)."""
        names = {field.name for field in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@attrs.frozen
class StreamStart:
    """What :meth:`LiveCallState.start_stream` found.

    Attributes:
        record: the webhook's data of the call, or None (not stored, or expired).
        claimed: True when the call is now live here; False when it already had a live
            stream (here or on another instance): the new stream must be refused.
    """

    record: CallRecord | None
    claimed: bool


class LiveCallState(Protocol):
    """Where the transport keeps what must outlive one request.

    Implementations must make :meth:`consume_token` and :meth:`mark_live` atomic: two
    sockets racing with the same token or call SID, on one instance or several, must see
    one success and one refusal.
    """

    async def issue_token(self, call_sid: str) -> str:
        """A fresh single-use stream token for ``call_sid``, valid for the store's token
        TTL in seconds; it replaces any earlier unused token of the call."""
        ...

    async def admit_call(self, record: CallRecord) -> str | None:
        """The voice webhook's step in one (one round trip in a network store): None when
        the call already has a live stream (a replayed webhook); else store ``record`` (as
        :meth:`remember_call`) and return a fresh stream token (as :meth:`issue_token`)."""
        ...

    async def start_stream(self, call_sid: str, token: str | None, owner: str) -> StreamStart:
        """A stream's ``start`` in one (one round trip in a network store): spend ``token``
        (as :meth:`consume_token`), read the call's record and claim the call for instance
        ``owner`` (as :meth:`mark_live`). Atomic like each of them.

        Raises:
            TokenRejected: as :meth:`consume_token` (nothing is claimed).
        """
        ...

    async def consume_token(self, call_sid: str, token: str | None) -> None:
        """Spend ``token`` for ``call_sid`` (compared in constant time). A wrong token leaves
        the issued one in place.

        Raises:
            TokenRejected: missing, unknown (never issued or already used), expired or
                mismatched (see :class:`voicehost.server.tokens.TokenRejected`).
        """
        ...

    async def revoke_token(self, call_sid: str) -> None:
        """Forget any unused token of ``call_sid`` (the call ended before its stream)."""
        ...

    async def remember_call(self, record: CallRecord) -> None:
        """Store (or replace) the webhook's data of a call. It is kept while the call is
        live and for the store's record TTL in seconds otherwise."""
        ...

    async def get_call(self, call_sid: str) -> CallRecord | None:
        """The stored data of ``call_sid``, or None."""
        ...

    async def update_status(self, call_sid: str, status: str) -> CallRecord | None:
        """Set the stored call's ``status``; returns the updated record, or None when the
        call is not known here."""
        ...

    async def update_call(
        self,
        call_sid: str,
        *,
        status: str | None = None,
        answered_by: str | None = None,
        stream_outcome: str | None = None,
    ) -> CallRecord | None:
        """Set the given fields of the stored call; returns the updated record, or None
        when the call is not known here."""
        ...

    async def forget_call(self, call_sid: str) -> None:
        """Drop the stored data of ``call_sid`` (a no-op when unknown)."""
        ...

    async def claim_notify(self, call_sid: str) -> bool:
        """Atomic: True the first time it is called for ``call_sid`` (that webhook serves
        the notify message), False after (follow-up webhooks get empty TwiML). Kept for
        the store's record TTL."""
        ...

    async def mark_live(self, call_sid: str, owner: str) -> bool:
        """Claim ``call_sid`` for a stream served by instance ``owner``. Atomic.

        Returns:
            True when claimed; False when the call already has a live stream (here or on
            another instance): the new stream must be refused.
        """
        ...

    async def is_live(self, call_sid: str) -> bool:
        """True while some instance serves a live stream of ``call_sid``."""
        ...

    async def live_owner(self, call_sid: str) -> str | None:
        """The instance serving ``call_sid``'s live stream, or None."""
        ...

    async def mark_ended(self, call_sid: str, owner: str) -> None:
        """Release the claim of ``owner`` on ``call_sid`` (its stream ended). A claim held by
        another instance is left alone."""
        ...


class MemoryLiveState:
    """:class:`LiveCallState` in this process's memory: the default, for one instance.

    Args:
        token_ttl_s: seconds a stream token stays valid unused.
        record_ttl_s: seconds a call's webhook data is kept while no stream is live.
        clock: monotonic clock in seconds, injectable for tests.

    Attributes:
        tokens: the :class:`~voicehost.server.tokens.StreamTokens` (``len(tokens)`` is the
            number of unused, unexpired tokens).
    """

    def __init__(
        self,
        token_ttl_s: float = 30.0,
        *,
        record_ttl_s: float = DEFAULT_RECORD_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tokens = StreamTokens(token_ttl_s, clock=clock)
        self.record_ttl_s = record_ttl_s
        self._clock = clock
        self._records: dict[str, tuple[CallRecord, float]] = {}
        self._live: dict[str, str] = {}
        self._notified: dict[str, float] = {}

    # --- tokens ----------------------------------------------------------------------------

    async def issue_token(self, call_sid: str) -> str:
        return self.tokens.issue(call_sid)

    async def consume_token(self, call_sid: str, token: str | None) -> None:
        self.tokens.consume(call_sid, token)

    async def revoke_token(self, call_sid: str) -> None:
        self.tokens.revoke(call_sid)

    async def admit_call(self, record: CallRecord) -> str | None:
        if await self.is_live(record.call_sid):
            return None
        await self.remember_call(record)
        return await self.issue_token(record.call_sid)

    async def start_stream(self, call_sid: str, token: str | None, owner: str) -> StreamStart:
        await self.consume_token(call_sid, token)
        record = await self.get_call(call_sid)
        return StreamStart(record, await self.mark_live(call_sid, owner))

    # --- call data -------------------------------------------------------------------------

    async def remember_call(self, record: CallRecord) -> None:
        self._purge()
        self._records[record.call_sid] = (record, self._clock())

    async def get_call(self, call_sid: str) -> CallRecord | None:
        entry = self._records.get(call_sid)
        if entry is None or self._expired(call_sid, entry[1]):
            return None
        return entry[0]

    async def update_status(self, call_sid: str, status: str) -> CallRecord | None:
        return await self.update_call(call_sid, status=status)

    async def update_call(
        self,
        call_sid: str,
        *,
        status: str | None = None,
        answered_by: str | None = None,
        stream_outcome: str | None = None,
    ) -> CallRecord | None:
        record = await self.get_call(call_sid)
        if record is None:
            return None
        changes = {
            name: value
            for name, value in (
                ("status", status),
                ("answered_by", answered_by),
                ("stream_outcome", stream_outcome),
            )
            if value is not None
        }
        updated = attrs.evolve(record, **changes)
        self._records[call_sid] = (updated, self._records[call_sid][1])
        return updated

    async def claim_notify(self, call_sid: str) -> bool:
        self._purge()
        if call_sid in self._notified:
            return False
        self._notified[call_sid] = self._clock()
        return True

    async def forget_call(self, call_sid: str) -> None:
        self._records.pop(call_sid, None)

    # --- live calls ------------------------------------------------------------------------

    async def mark_live(self, call_sid: str, owner: str) -> bool:
        if call_sid in self._live:
            return False
        self._live[call_sid] = owner
        return True

    async def is_live(self, call_sid: str) -> bool:
        return call_sid in self._live

    async def live_owner(self, call_sid: str) -> str | None:
        return self._live.get(call_sid)

    async def mark_ended(self, call_sid: str, owner: str) -> None:
        if self._live.get(call_sid) == owner:
            del self._live[call_sid]

    # --- internals -------------------------------------------------------------------------

    def stored_calls(self) -> int:
        """How many call records are stored (live, or not yet expired)."""
        self._purge()
        return len(self._records)

    def _expired(self, call_sid: str, stored_at: float) -> bool:
        return call_sid not in self._live and self._clock() - stored_at > self.record_ttl_s

    def _purge(self) -> None:
        for sid in [s for s, (_, at) in self._records.items() if self._expired(s, at)]:
            del self._records[sid]
        now = self._clock()
        for sid in [s for s, at in self._notified.items() if now - at > self.record_ttl_s]:
            del self._notified[sid]
