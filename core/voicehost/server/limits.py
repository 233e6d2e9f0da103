"""Connection limits for Media Streams sockets that have not yet sent a valid ``start``.

As in the seed (``media-stream.v2-hardened.ts``): an unauthenticated socket costs memory and a
task, so at most ``max_pending`` may wait for ``start`` at once, ``max_pending_per_ip`` from
one client IP. (The total socket cap is checked before the upgrade, in the handler.)
"""

from __future__ import annotations

import collections

__all__ = ["PendingLimiter"]


class PendingLimiter:
    """Counts sockets waiting for ``start``, in all and per client IP.

    Args:
        max_pending: sockets waiting for ``start`` at once.
        max_pending_per_ip: of which from one IP.
    """

    def __init__(self, max_pending: int, max_pending_per_ip: int) -> None:
        self.max_pending = max_pending
        self.max_pending_per_ip = max_pending_per_ip
        self._members: dict[object, str] = {}
        self._by_ip: collections.Counter[str] = collections.Counter()

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, key: object) -> bool:
        return key in self._members

    def acquire(self, key: object, ip: str) -> str | None:
        """Register ``key`` (a socket) from ``ip``.

        Returns:
            None when admitted, else the reason it is refused (for the 1013 close).
        """
        if len(self._members) >= self.max_pending:
            return "Too many pending media stream connections"
        if self._by_ip[ip] >= self.max_pending_per_ip:
            return "Too many pending media stream connections from this address"
        self._members[key] = ip
        self._by_ip[ip] += 1
        return None

    def release(self, key: object) -> None:
        """Forget ``key`` (it sent ``start`` or closed); a no-op when not registered."""
        ip = self._members.pop(key, None)
        if ip is None:
            return
        self._by_ip[ip] -= 1
        if self._by_ip[ip] <= 0:
            del self._by_ip[ip]

    def count_for(self, ip: str) -> int:
        """Sockets from ``ip`` waiting for ``start``."""
        return self._by_ip.get(ip, 0)
