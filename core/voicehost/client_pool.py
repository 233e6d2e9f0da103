"""SDK clients kept per event loop, for providers that make one HTTP request a reply."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["LoopClientPool"]

C = TypeVar("C")


class LoopClientPool(Generic[C]):
    """Vendor SDK clients, one per running event loop and key (key, origin, timeouts …).

    The replies of a call then reuse one keep-alive connection instead of paying a TLS
    handshake each, and a client is never used on a loop other than the one it was made on
    (httpx connection pools are bound to their loop). A loop's clients are forgotten with
    the loop (weak keys).

    Args:
        close: closes one client and its connections (awaited by :meth:`aclose`).
        is_closed: True for a client closed behind the pool's back; it is made again.
    """

    def __init__(
        self,
        close: Callable[[C], Awaitable[object]],
        is_closed: Callable[[C], bool] | None = None,
    ) -> None:
        self._close = close
        self._is_closed = is_closed
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, C]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, key: Hashable, make: Callable[[], C]) -> C:
        """The running loop's client for ``key``; ``make()`` builds it on first use.

        Raises:
            RuntimeError: no event loop is running.
        """
        per_loop = self._clients.setdefault(asyncio.get_running_loop(), {})
        client = per_loop.get(key)
        if client is None or (self._is_closed is not None and self._is_closed(client)):
            client = per_loop[key] = make()
        return client

    async def aclose(self) -> None:
        """Close and forget the running loop's clients; later :meth:`get` calls make new
        ones."""
        for client in self._clients.pop(asyncio.get_running_loop(), {}).values():
            await self._close(client)
