"""Two real ``voicehost serve`` processes sharing one Redis (``[state]``) and one PostgreSQL
(``[records]``), as behind a round-robin load balancer: webhook on one, stream on the other;
actions forwarded to the instance holding the call; rolling restarts; Redis and Postgres
outages."""

from __future__ import annotations

import asyncio
import signal

import pytest
from scale_serve import GREETING, HEARD, REPLY, Serve, spawn, split_call, until, write_config

from voicehost.records import read_call
from voicehost.testing.providers import tone
from voicehost.testing.twilio_stream import random_sid

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def deployment(tmp_path, prefix):
    started: list[Serve] = []

    async def start(redis_url: str, pg_url: str, *, grace_s: float = 10.0, n: int = 2):
        serves = []
        for i in range(n):
            name = "AB"[i]
            config = write_config(
                tmp_path / f"plugins-{name}.toml",
                redis_url=redis_url,
                prefix=prefix,
                pg_url=pg_url,
                grace_s=grace_s,
            )
            serves.append(await spawn(tmp_path, name, config))
        started.extend(serves)
        await asyncio.gather(*(s.ready() for s in serves))
        return serves

    yield start
    for serve in started:
        if serve.proc.returncode is None:
            serve.proc.kill()
            await serve.proc.wait()
        print(f"--- instance {serve.name} ---\n{serve.log}")  # shown when the test fails


async def talk(call) -> None:
    """Once the greeting has played, the caller says something (10 frames: the fake STT
    hears :data:`HEARD`) and waits until the bot's answer has played."""
    await call.wait_for(lambda: len(call.echoed_marks) >= 1, timeout=30)  # the greeting
    played = len(call.echoed_marks)
    await call.play(tone(0.2))
    await call.wait_for(lambda: len(call.echoed_marks) > played, timeout=30)  # the reply


def turns(record: dict | None) -> list[tuple[str, str]]:
    return [(t["kind"], t["text"]) for t in (record or {}).get("turns", [])]


async def recorded(url: str, call_sid: str, *, ended: bool = True):
    """The call's record once it has its reply turn (and its end)."""

    async def check():
        record = await asyncio.to_thread(read_call, url, call_sid)
        if record and ("reply", REPLY) in turns(record) and (record["end_reason"] or not ended):
            return record
        return None

    return await until(check, timeout=30)


async def test_webhook_on_a_and_stream_on_b_make_a_normal_call(deployment, redis_server, pg_url):
    a, b = await deployment(redis_server.url, pg_url)
    async with a.simulator() as sim_a, b.simulator() as sim_b:
        call = await split_call(sim_a, sim_b)
        await call.wait_for_audio(seconds=0.1, timeout=30)  # the greeting, from B
        status, live = await a.get_json(sim_a, "/api/live-calls")
        assert status == 200 and live["scope"] == "deployment"
        assert [c["call_sid"] for c in live["calls"]] == [call.call_sid]
        assert (
            live["calls"][0]["here"] is False and live["calls"][0]["instance"] != live["instance"]
        )
        _, mine = await a.get_json(sim_a, "/api/live-calls?scope=instance")
        assert mine["calls"] == []
        await talk(call)
        await call.stop()
        assert call.close_code == 1000 and call.protocol_errors == []
        record = await recorded(pg_url, call.call_sid)
        assert turns(record)[:3] == [("greeting", GREETING), ("final", HEARD), ("reply", REPLY)]
        assert record["end_reason"] == "caller-hangup"
        status, via_a = await a.get_json(sim_a, f"/api/calls/{call.call_sid}")
        assert status == 200 and turns(via_a) == turns(record)  # any instance reads it


async def test_a_replayed_token_is_refused_on_the_other_instance(deployment, redis_server, pg_url):
    a, b = await deployment(redis_server.url, pg_url)
    async with a.simulator() as sim_a, b.simulator() as sim_b:
        call = await split_call(sim_a, sim_b)
        await call.wait_for_audio(seconds=0.1, timeout=30)
        replay = await sim_a.open_stream(call_sid=call.call_sid)
        replay.custom_parameters = dict(call.custom_parameters)
        await replay.send_connected()
        await replay.send_start()
        assert await replay.wait_closed(15) == 1008
        webhook = await sim_a.post_form("/voice/webhook", sim_a.webhook_params(call.call_sid))
        assert webhook.status == 409  # the call is live on B: no second token
        assert not call.ws.closed
        await call.stop()


async def test_a_status_callback_on_b_ends_a_call_held_by_a(deployment, redis_server, pg_url):
    a, b = await deployment(redis_server.url, pg_url)
    async with a.simulator() as sim_a, b.simulator() as sim_b:
        call = await split_call(sim_a, sim_a)
        await call.wait_for_audio(seconds=0.1, timeout=30)
        reply = await sim_b.post_status(call.call_sid, "completed")
        assert reply.status == 204  # answered once A acted
        assert await call.wait_closed(15) == 1000
    reason = await until(
        lambda: asyncio.to_thread(
            lambda: (read_call(pg_url, call.call_sid) or {}).get("end_reason")
        )
    )
    assert reason == "caller-hangup"


async def test_a_hang_up_through_bs_api_ends_a_call_held_by_a(deployment, redis_server, pg_url):
    a, b = await deployment(redis_server.url, pg_url)
    async with a.simulator() as sim_a, b.simulator() as sim_b:
        call = await split_call(sim_b, sim_a)
        await call.wait_for_audio(seconds=0.1, timeout=30)
        status, body = await b.post_json(sim_b, f"/api/calls/{call.call_sid}/hangup")
        assert (status, body) == (200, {"call_sid": call.call_sid, "hung_up": True})
        assert await call.wait_closed(15) == 1000

        async def gone():
            _, live = await b.get_json(sim_b, "/api/live-calls")
            return not live["calls"]

        await until(gone)
        status, _ = await b.post_json(sim_b, f"/api/calls/{call.call_sid}/hangup")
        assert status == 404  # no longer live anywhere
        status, body = await b.post_json(
            sim_b, f"/api/calls/{random_sid('CA')}/transfer", {"to": "+15550003333"}
        )
        assert status == 404


async def test_sigterm_on_a_lets_its_calls_finish_and_new_calls_land_on_b(
    deployment, redis_server, pg_url
):
    a, b = await deployment(redis_server.url, pg_url, grace_s=60)
    async with a.simulator() as sim_a, b.simulator() as sim_b:
        held = [await split_call(sim_a, sim_a), await split_call(sim_b, sim_a)]
        for call in held:
            await call.wait_for_audio(seconds=0.1, timeout=30)
        a.proc.send_signal(signal.SIGTERM)

        async def draining():
            async with sim_a.session.get(a.base_url + "/healthz") as resp:
                return resp.status == 503 and (await resp.json())["status"] == "draining"

        await until(draining, timeout=15)
        refused = await sim_a.post_form("/voice/webhook", sim_a.webhook_params(random_sid("CA")))
        assert refused.status == 503
        new = await sim_b.start_call()  # the load balancer sends new calls to B
        await new.wait_for_audio(seconds=0.1, timeout=30)
        for call in held:  # A's calls go on to their natural end
            assert not call.ws.closed
            await talk(call)
            await call.stop()
            assert call.close_code == 1000
        await new.stop()
    assert await a.wait(30) == 0
    for call in held:
        record = await recorded(pg_url, call.call_sid)
        assert record["end_reason"] == "caller-hangup"


async def test_redis_lost_mid_call_live_calls_go_on_new_calls_503_until_it_is_back(
    deployment, own_redis, pg_url
):
    a, b = await deployment(own_redis.url, pg_url)
    async with a.simulator() as sim_a, b.simulator() as sim_b:
        call = await split_call(sim_a, sim_b)
        await call.wait_for_audio(seconds=0.1, timeout=30)
        own_redis.stop()
        refused = await sim_a.post_form("/voice/webhook", sim_a.webhook_params(random_sid("CA")))
        assert refused.status == 503
        await talk(call)  # the live call goes on: its state is local to B
        own_redis.start()

        async def accepted():
            sid = random_sid("CA")
            reply = await sim_a.post_form("/voice/webhook", sim_a.webhook_params(sid))
            return reply.status == 200

        await until(accepted, timeout=30, every=0.5)  # reconnected by itself
        new = await split_call(sim_a, sim_b)
        await new.wait_for_audio(seconds=0.1, timeout=30)
        await new.stop()
        await call.stop()
        assert call.close_code == 1000
    record = await recorded(pg_url, call.call_sid)
    assert ("reply", REPLY) in turns(record)
    for serve in (a, b):
        assert "Traceback" not in serve.log, serve.log
        assert sum("unreachable" in line for line in serve.lines) <= 2


async def test_postgres_lost_mid_call_no_turn_is_lost_once_it_is_back(
    deployment, redis_server, own_postgres
):
    pg_url = own_postgres.create_database("calls")
    a, b = await deployment(redis_server.url, pg_url)
    async with a.simulator() as sim_a, b.simulator() as sim_b:
        call = await split_call(sim_a, sim_b)
        await call.wait_for_audio(seconds=0.1, timeout=30)
        own_postgres.stop()
        await talk(call)
        await call.stop()
        assert call.close_code == 1000
        own_postgres.start()
        record = await recorded(pg_url, call.call_sid)
    assert turns(record)[:3] == [("greeting", GREETING), ("final", HEARD), ("reply", REPLY)]
    assert record["end_reason"] == "caller-hangup"
    assert any("unreachable" in line and call.call_sid in line for line in b.lines), b.log


async def test_redis_unreachable_at_start_up_is_one_clear_line_naming_the_url(
    tmp_path, prefix, pg_url
):
    from scale_serve import free_port_url

    url = free_port_url()
    config = write_config(
        tmp_path / "p.toml", redis_url=url, prefix=prefix, pg_url=pg_url, grace_s=1
    )
    serve = await spawn(tmp_path, "A", config)
    assert await serve.wait(60) == 1
    assert any("[state] url" in line and url in line for line in serve.lines), serve.log
    assert "Traceback" not in serve.log
