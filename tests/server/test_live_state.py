"""The live call state behind one interface (issue 9, item 1): the in-memory default, and a
store shared by two server instances, as Redis would be, with the transport unchanged."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from voicehost.server import CallRecord, LiveCallState, MemoryLiveState
from voicehost.server.tokens import TokenRejected
from voicehost.testing.handlers import RecordingHandler
from voicehost.testing.twilio import parse_stream_twiml, random_sid


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class RemoteLikeState:
    """A :class:`LiveCallState` that yields to the event loop on every call, as a network
    store does, and records which methods the transport used."""

    def __init__(self, inner: MemoryLiveState) -> None:
        self.inner = inner
        self.used: list[str] = []

    def __getattr__(self, name: str):
        method = getattr(self.inner, name)

        async def call(*args, **kwargs):
            self.used.append(name)
            await asyncio.sleep(0)
            return await method(*args, **kwargs)

        return call


async def test_memory_state_tokens_are_single_use():
    state = MemoryLiveState(token_ttl_s=30, clock=Clock())
    token = await state.issue_token("CA1")
    with pytest.raises(TokenRejected, match="mismatch"):
        await state.consume_token("CA1", "x" * 22)
    await state.consume_token("CA1", token)
    with pytest.raises(TokenRejected, match="unknown"):
        await state.consume_token("CA1", token)
    await state.issue_token("CA2")
    await state.revoke_token("CA2")
    assert len(state.tokens) == 0


async def test_memory_state_records_expire_unless_live():
    clock = Clock()
    state = MemoryLiveState(record_ttl_s=60, clock=clock)
    await state.remember_call(CallRecord("CA1", from_="+1"))
    await state.remember_call(CallRecord("CA2"))
    assert await state.mark_live("CA2", "a")
    updated = await state.update_status("CA1", "ringing")
    assert updated is not None and (updated.from_, updated.status) == ("+1", "ringing")
    assert (await state.get_call("CA1")).status == "ringing"
    assert await state.update_status("CA9", "completed") is None
    clock.now += 61
    assert await state.get_call("CA1") is None  # expired
    assert await state.get_call("CA2") is not None  # live: kept
    assert state.stored_calls() == 1
    await state.forget_call("CA2")
    assert await state.get_call("CA2") is None


async def test_memory_state_live_claims_are_exclusive_and_owned():
    state = MemoryLiveState()
    assert await state.mark_live("CA1", "a")
    assert not await state.mark_live("CA1", "b")
    assert await state.is_live("CA1") and await state.live_owner("CA1") == "a"
    await state.mark_ended("CA1", "b")  # not b's claim: left alone
    assert await state.is_live("CA1")
    await state.mark_ended("CA1", "a")
    assert not await state.is_live("CA1") and await state.live_owner("CA1") is None
    assert await state.mark_live("CA1", "b")


async def test_concurrent_claims_have_one_winner():
    state = MemoryLiveState()
    results = await asyncio.gather(*(state.mark_live("CA1", f"i{n}") for n in range(10)))
    assert results.count(True) == 1


def test_memory_state_implements_every_method_of_the_protocol_as_a_coroutine():
    wanted = {name for name in vars(LiveCallState) if not name.startswith("_")}
    assert len(wanted) == 15
    for name in wanted:
        assert inspect.iscoroutinefunction(getattr(MemoryLiveState, name)), name


async def test_a_call_runs_through_any_live_state(make_server):
    """The transport reaches tokens, call data and the live-call registry only through the
    interface: a store that yields on every call works unchanged."""
    state = RemoteLikeState(MemoryLiveState())
    handler = RecordingHandler()
    h = await make_server(handler=handler, live=state)
    async with h.simulator() as sim:
        call = await sim.start_call()
        await handler.wait_for("start")
        live = handler.calls[0]
        assert (live.from_, live.to, live.direction) == ("+15005550006", "+15005550001", "inbound")
        status = await sim.post_status(call.call_sid, "in-progress")
        assert status.status == 204
        await call.stop()
        await handler.wait_for("end")
    assert set(state.used) >= {"admit_call", "start_stream", "update_call", "mark_ended"}
    assert not await state.inner.is_live(call.call_sid)
    # kept (until its TTL) with how the stream ended, for the webhook's after-stream step
    assert (await state.inner.get_call(call.call_sid)).stream_outcome == "caller-hangup"


async def test_two_instances_sharing_a_state_serve_one_number(make_server):
    """Webhook on one instance, stream on the other; a replayed webhook and a second
    stream for the live call are refused whichever instance they reach."""
    shared = MemoryLiveState()
    handler_a, handler_b = RecordingHandler(), RecordingHandler()
    a = await make_server(handler=handler_a, live=shared)
    b = await make_server(handler=handler_b, live=shared)
    assert a.server.instance_id != b.server.instance_id
    async with a.simulator() as sim_a, b.simulator() as sim_b:
        call_sid = random_sid("CA")
        reply = await sim_a.post_form("/voice/webhook", sim_a.webhook_params(call_sid))
        token = parse_stream_twiml(reply.text)[1]["token"]
        call = await sim_b.open_stream(call_sid=call_sid)  # the load balancer picked b
        await call.send_start(token=token)
        await handler_b.wait_for("start")
        assert handler_b.calls[0].from_ == "+15005550006"  # a's webhook data
        assert await shared.live_owner(call_sid) == b.server.instance_id

        replay = await sim_a.post_form("/voice/webhook", sim_a.webhook_params(call_sid))
        assert replay.status == 409
        second_token = await shared.issue_token(call_sid)
        second = await sim_a.open_stream(call_sid=call_sid)
        await second.send_start(token=second_token)
        assert await second.wait_closed() == 1008
        assert not a.server.calls and handler_a.names() == []

        await call.stop()
        await handler_b.wait_for("end")
    assert not await shared.is_live(call_sid)
