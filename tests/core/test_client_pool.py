"""The per-event-loop client pool the HTTP TTS plugins keep their SDK clients in."""

from __future__ import annotations

import asyncio

from voicehost.client_pool import LoopClientPool


class Client:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    async def close(self) -> None:
        self.closed = True


def pool() -> LoopClientPool[Client]:
    return LoopClientPool(close=lambda c: c.close(), is_closed=lambda c: c.closed)


def test_one_client_per_key_is_reused_and_closed_on_aclose():
    p = pool()

    async def run() -> tuple[Client, Client, Client]:
        a = p.get("k1", lambda: Client("a"))
        again = p.get("k1", lambda: Client("never"))
        b = p.get("k2", lambda: Client("b"))
        await p.aclose()
        return a, again, b

    a, again, b = asyncio.run(run())
    assert again is a
    assert (a.name, b.name) == ("a", "b")
    assert a.closed and b.closed


def test_each_event_loop_gets_its_own_client():
    p = pool()

    async def get() -> Client:
        return p.get("k", lambda: Client("x"))

    assert asyncio.run(get()) is not asyncio.run(get())


def test_a_client_closed_behind_the_pools_back_is_made_again():
    p = pool()

    async def run() -> tuple[Client, Client]:
        first = p.get("k", lambda: Client("first"))
        await first.close()
        return first, p.get("k", lambda: Client("second"))

    first, second = asyncio.run(run())
    assert second is not first and second.name == "second"
