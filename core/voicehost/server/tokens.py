"""Per-call stream tokens: what ties a Media Streams socket to a signed voice webhook.

The webhook (signed by Twilio) issues a token for the call SID and puts it in the TwiML
``<Parameter name="token">``; the socket's ``start`` message must carry it back in
``start.customParameters.token``. A token is 16 random bytes in url-safe base64, single use,
and expires after ``ttl_s`` seconds unused. Twilio strips query strings from stream URLs, hence
a ``<Parameter>`` (openclaw #12340).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable

import attrs

__all__ = ["StreamTokens", "TokenRejected"]


class TokenRejected(Exception):
    """A ``start`` whose token is unknown, reused, expired, or for another call.

    Attributes:
        reason: ``"missing"``, ``"unknown"`` (no token issued for the call SID, or already
            used), ``"expired"`` or ``"mismatch"``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"stream token {reason}")
        self.reason = reason


@attrs.define
class _Issued:
    token: str
    expires_at: float


class StreamTokens:
    """Issues and consumes stream tokens, keyed by call SID.

    Args:
        ttl_s: seconds a token stays valid unused.
        clock: monotonic clock (seconds), injectable for tests.
    """

    def __init__(self, ttl_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._issued: dict[str, _Issued] = {}

    def issue(self, call_sid: str) -> str:
        """A fresh token for ``call_sid`` (replacing any earlier unused one)."""
        self._purge()
        token = secrets.token_urlsafe(16)
        self._issued[call_sid] = _Issued(token, self._clock() + self.ttl_s)
        return token

    def consume(self, call_sid: str, token: str | None) -> None:
        """Accept ``token`` for ``call_sid`` once (compared in constant time). A wrong token
        leaves the issued one in place, so a stranger who knows the call SID cannot spend
        Twilio's token; guessing 128 random bits is not practical.

        Raises:
            TokenRejected: see its ``reason``.
        """
        if not token:
            raise TokenRejected("missing")
        issued = self._issued.get(call_sid)
        if issued is None:
            raise TokenRejected("unknown")
        if not hmac.compare_digest(issued.token.encode(), token.encode()):
            raise TokenRejected("mismatch")
        del self._issued[call_sid]
        if self._clock() > issued.expires_at:
            raise TokenRejected("expired")

    def revoke(self, call_sid: str) -> None:
        """Forget any unused token of ``call_sid`` (the call ended before its stream)."""
        self._issued.pop(call_sid, None)

    def __len__(self) -> int:
        self._purge()
        return len(self._issued)

    def _purge(self) -> None:
        now = self._clock()
        for sid in [s for s, i in self._issued.items() if now > i.expires_at]:
            del self._issued[sid]
