"""The Redis live state against a real ``redis-server``: the
:class:`~voicehost.server.live_state.LiveCallState` contract (atomic token take, claims,
TTLs, namespacing), the deployment's registry, and what happens when Redis goes away."""

from __future__ import annotations

import asyncio

import pytest

from voicehost.server.live_state import CallRecord, LiveStateUnavailable
from voicehost.server.redis_state import RedisLiveState
from voicehost.server.tokens import TokenRejected


@pytest.fixture
async def state(redis_server, prefix):
    live = RedisLiveState(redis_server.url, prefix=prefix, token_ttl_s=30, live_ttl_s=5)
    yield live
    await live.aclose()


async def other_instance(redis_server, prefix) -> RedisLiveState:
    return RedisLiveState(redis_server.url, prefix=prefix, token_ttl_s=30, live_ttl_s=5)


async def test_a_token_is_taken_once_even_by_racing_instances(state, redis_server, prefix):
    b = await other_instance(redis_server, prefix)
    try:
        token = await state.issue_token("CA1")
        results = await asyncio.gather(
            *(s.consume_token("CA1", token) for s in (state, b, state, b)),
            return_exceptions=True,
        )
        assert results.count(None) == 1
        assert all(isinstance(r, TokenRejected) and r.reason == "unknown" for r in results if r)
    finally:
        await b.aclose()


async def test_a_wrong_token_leaves_the_issued_one(state):
    token = await state.issue_token("CA2")
    with pytest.raises(TokenRejected) as wrong:
        await state.consume_token("CA2", "not-it")
    assert wrong.value.reason == "mismatch"
    with pytest.raises(TokenRejected) as missing:
        await state.consume_token("CA2", "")
    assert missing.value.reason == "missing"
    await state.consume_token("CA2", token)
    with pytest.raises(TokenRejected):
        await state.consume_token("CA2", token)


async def test_a_revoked_or_expired_token_is_unknown(redis_server, prefix):
    live = RedisLiveState(redis_server.url, prefix=prefix, token_ttl_s=0.2)
    try:
        token = await live.issue_token("CA3")
        await live.revoke_token("CA3")
        with pytest.raises(TokenRejected):
            await live.consume_token("CA3", token)
        token = await live.issue_token("CA3")
        await asyncio.sleep(0.4)
        with pytest.raises(TokenRejected):
            await live.consume_token("CA3", token)
    finally:
        await live.aclose()


async def test_call_records_are_shared_and_updated_atomically(state, redis_server, prefix):
    b = await other_instance(redis_server, prefix)
    try:
        record = CallRecord(
            call_sid="CA4",
            from_="+15550001111",
            to="+15550002222",
            direction="inbound",
            status="ringing",
        )
        await state.remember_call(record)
        assert await b.get_call("CA4") == record
        updated = await b.update_call("CA4", status="in-progress", answered_by="human")
        assert updated is not None and updated.status == "in-progress"
        seen = await state.get_call("CA4")
        assert seen is not None
        assert (seen.status, seen.answered_by, seen.from_) == (
            "in-progress",
            "human",
            "+15550001111",
        )
        assert await state.update_status("CA-unknown", "completed") is None
        await b.forget_call("CA4")
        assert await state.get_call("CA4") is None
    finally:
        await b.aclose()


async def test_notify_is_claimed_once_across_instances(state, redis_server, prefix):
    b = await other_instance(redis_server, prefix)
    try:
        claims = await asyncio.gather(state.claim_notify("CA5"), b.claim_notify("CA5"))
        assert sorted(claims) == [False, True]
    finally:
        await b.aclose()


async def test_a_call_is_claimed_by_one_instance_and_released_only_by_it(
    state, redis_server, prefix
):
    b = await other_instance(redis_server, prefix)
    try:
        won = await asyncio.gather(state.mark_live("CA6", "A"), b.mark_live("CA6", "B"))
        assert sorted(won) == [False, True]
        owner = await state.live_owner("CA6")
        loser = "B" if owner == "A" else "A"
        await state.mark_ended("CA6", loser)
        assert await b.is_live("CA6")
        assert await b.live_calls() == {"CA6": owner}
        await (state if owner == "A" else b).mark_ended("CA6", owner)
        assert not await state.is_live("CA6")
    finally:
        await b.aclose()


async def test_keys_are_namespaced_by_prefix(state, redis_server, prefix):
    other = RedisLiveState(redis_server.url, prefix=prefix + "-other")
    try:
        await state.mark_live("CA7", "A")
        assert not await other.is_live("CA7")
        assert await other.live_calls() == {}
        keys = [k async for k in state.client.scan_iter(match="*CA7*")]
        assert keys and all(k.startswith(prefix + ":") for k in keys)
    finally:
        await other.aclose()


async def test_a_dead_instances_claims_expire_a_live_ones_are_refreshed(redis_server, prefix):
    alive = RedisLiveState(redis_server.url, prefix=prefix, live_ttl_s=1)
    dead = RedisLiveState(redis_server.url, prefix=prefix, live_ttl_s=1)
    try:
        assert await alive.mark_live("CA-alive", "A")
        assert await dead.mark_live("CA-dead", "B")
        refresher = asyncio.create_task(alive.maintain(every_s=0.2))
        await asyncio.sleep(1.6)
        assert await alive.live_calls() == {"CA-alive": "A"}
        refresher.cancel()
    finally:
        await alive.aclose()
        await dead.aclose()


async def test_redis_lost_fails_fast_then_reconnects_and_reclaims(own_redis, prefix, caplog):
    live = RedisLiveState(own_redis.url, prefix=prefix, live_ttl_s=5)
    keeper = asyncio.create_task(live.maintain(every_s=0.2))
    try:
        assert await live.mark_live("CA8", "A")
        own_redis.stop()
        with pytest.raises(LiveStateUnavailable):
            await live.issue_token("CA9")
        assert not live.available
        with pytest.raises(LiveStateUnavailable):  # at once, without a network wait
            await live.get_call("CA9")
        own_redis.start()  # empty: the claim of the live call is gone
        await asyncio.wait_for(live.wait_available(), 10)
        assert live.available
        for _ in range(50):  # re-claimed by the refresh after the reconnect
            if await live.live_owner("CA8") == "A":
                break
            await asyncio.sleep(0.1)
        assert await live.live_owner("CA8") == "A"
        await live.issue_token("CA9")
        warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].exc_info is None
        assert any("is back" in r.getMessage() for r in caplog.records)
    finally:
        keeper.cancel()
        await live.aclose()


@pytest.fixture(params=["memory", "redis"])
async def any_state(request, redis_server, prefix):
    if request.param == "memory":
        from voicehost.server.live_state import MemoryLiveState

        yield MemoryLiveState()
        return
    live = RedisLiveState(redis_server.url, prefix=prefix, token_ttl_s=30, live_ttl_s=5)
    yield live
    await live.aclose()


async def test_admit_and_start_stream_are_the_webhook_and_start_in_one_step(any_state):
    """The one-round-trip steps do what their parts do: a replayed webhook for a live call
    gets no token; a stream start spends the token once, reads the record and claims."""
    record = CallRecord(call_sid="CA77", from_="+15550001111", status="ringing")
    token = await any_state.admit_call(record)
    assert token
    with pytest.raises(TokenRejected) as wrong:
        await any_state.start_stream("CA77", "not-it", "A")
    assert wrong.value.reason == "mismatch"
    with pytest.raises(TokenRejected) as missing:
        await any_state.start_stream("CA77", None, "A")
    assert missing.value.reason == "missing"
    assert not await any_state.is_live("CA77")  # nothing claimed by a refused start
    started = await any_state.start_stream("CA77", token, "A")
    assert started.claimed and started.record is not None
    assert (started.record.from_, started.record.status) == ("+15550001111", "ringing")
    assert await any_state.live_owner("CA77") == "A"
    with pytest.raises(TokenRejected) as spent:
        await any_state.start_stream("CA77", token, "B")
    assert spent.value.reason == "unknown"
    assert await any_state.admit_call(record) is None  # live: a replay gets no token
    await any_state.mark_ended("CA77", "A")
    again = await any_state.admit_call(record)
    assert again and again != token
    # a call already live elsewhere: the token is spent, the claim refused
    assert await any_state.mark_live("CA78", "B")
    assert await any_state.mark_ended("CA78", "B") is None
    second = await any_state.admit_call(CallRecord(call_sid="CA78"))
    assert await any_state.mark_live("CA78", "B")
    refused = await any_state.start_stream("CA78", second, "A")
    assert not refused.claimed and await any_state.live_owner("CA78") == "B"
