"""Graceful shutdown: drain stops new calls, lets live ones finish, then ends the rest."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from voicehost.testing.handlers import RecordingHandler
from voicehost.testing.providers import tone
from voicehost.testing.twilio import random_sid


async def test_drain_refuses_new_calls_and_waits_for_live_ones(make_server):
    handler = RecordingHandler()
    h = await make_server(handler=handler)
    async with h.simulator(speed=10) as sim:
        call = await sim.start_call()
        session = await h.plugin.stt.wait_for_session()
        pending = await sim.open_stream()
        drain = asyncio.create_task(h.server.drain(grace_s=30))
        assert await pending.wait_closed() == 1001  # sockets without a call go at once
        health = await sim.session.get(h.base_url + "/healthz")
        assert health.status == 503
        body = await health.json()
        assert (body["status"], body["active_calls"]) == ("draining", 1)
        reply = await sim.post_form("/voice/webhook", sim.webhook_params(random_sid("CA")))
        assert reply.status == 503
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await sim.open_stream()
        assert exc.value.status == 503
        # the live call goes on
        await call.play(tone(0.2))
        await session.wait_for_bytes(1600)
        assert not drain.done()
        await call.stop()
        await asyncio.wait_for(drain, 5)  # returns as soon as the last call ended
    assert handler.events[-1][2] == "caller-hangup"


async def test_drain_ends_calls_still_live_after_the_grace_period(make_server):
    handler = RecordingHandler()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        session = await h.plugin.stt.wait_for_session()
        await handler.wait_for("start")
        await asyncio.wait_for(h.server.drain(grace_s=0.2), 10)
        assert await call.wait_closed() == 1001
        end = await handler.wait_for("end")
    assert end[2] == "shutdown"
    assert session.close_calls == 1
    assert not h.server.calls


async def test_app_shutdown_ends_every_call(make_server):
    handler = RecordingHandler()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        await handler.wait_for("start")
        await h.close()
        assert await call.wait_closed() in (1001, 1006)
    assert handler.events[-1][0] == "end"
    assert handler.events[-1][2] == "shutdown"


async def test_drain_force_ends_calls_before_the_grace_period(make_server):
    handler = RecordingHandler()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        await handler.wait_for("start")
        force = asyncio.Event()
        drain = asyncio.create_task(h.server.drain(grace_s=60, force=force))
        await asyncio.sleep(0)
        assert not drain.done()
        force.set()
        await asyncio.wait_for(drain, 10)
        assert await call.wait_closed() == 1001
    assert handler.events[-1][2] == "shutdown"
