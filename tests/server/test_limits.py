"""Media Streams limits and stream tokens: every close code the seed defines."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from voicehost.server.outbound import OutboundChannel, OutboundMessage
from voicehost.testing.handlers import RecordingHandler
from voicehost.testing.twilio import TwilioSimulator, parse_stream_twiml, random_sid


async def _issue_token(sim: TwilioSimulator, call_sid: str) -> str:
    reply = await sim.post_form("/voice/webhook", sim.webhook_params(call_sid))
    assert reply.status == 200
    return parse_stream_twiml(reply.text)[1]["token"]


async def _until(predicate) -> None:
    """Wait for server-side state the test cannot await directly."""

    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.002)

    await asyncio.wait_for(poll(), 10)


def test_seed_defaults():
    from voicehost.server import ServerSettings

    s = ServerSettings()
    assert (s.pre_start_timeout_ms, s.max_pending_connections) == (5000, 32)
    assert (s.max_pending_connections_per_ip, s.max_connections) == (4, 128)
    assert (s.max_inbound_message_bytes, s.max_outbound_buffer_bytes) == (65536, 1048576)
    assert (s.max_queued_replies, s.playback_lead_ms, s.barge_in) == (8, 100, True)
    assert s.token_ttl_s == 30


async def test_no_start_within_the_timeout_closes_1008(make_server):
    h = await make_server(pre_start_timeout_ms=200)
    async with h.simulator() as sim:
        call = await sim.open_stream()
        await call.send_connected()
        await call.send_raw("not json")  # malformed input does not extend the deadline
        assert await call.wait_closed(5) == 1008
    assert len(h.server.pending) == 0
    assert not h.server.sockets


async def test_pending_limit_closes_1013(make_server):
    h = await make_server(max_pending_connections=2, max_pending_connections_per_ip=10)
    async with h.simulator() as sim:
        first = await sim.open_stream()
        second = await sim.open_stream()
        third = await sim.open_stream()
        assert await third.wait_closed() == 1013
        assert not first.ws.closed and not second.ws.closed
        # once one of them starts, it no longer counts as pending
        first.token = await _issue_token(sim, first.call_sid)
        await first.send_start(token=first.token)
        await h.plugin.stt.wait_for_session()
        fourth = await sim.open_stream()
        await fourth.send_connected()
        await _until(lambda: len(h.server.pending) == 2)  # second and fourth: admitted
        assert not fourth.ws.closed


async def test_per_ip_pending_limit_closes_1013(make_server):
    h = await make_server(max_pending_connections_per_ip=2)
    async with h.simulator() as sim:
        await sim.open_stream()
        await sim.open_stream()
        third = await sim.open_stream()
        assert await third.wait_closed() == 1013
        assert h.server.pending.count_for("127.0.0.1") == 2
    # another address is not affected
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as other_ip:
        async with TwilioSimulator(h.base_url, session=other_ip) as sim2:
            other = await sim2.open_stream()
            await other.send_connected()
            await _until(lambda: h.server.pending.count_for("127.0.0.2") == 1)
            assert not other.ws.closed


async def test_total_socket_limit_is_503_before_the_upgrade(make_server):
    h = await make_server(max_connections=2)
    async with h.simulator() as sim:
        await sim.open_stream()
        await sim.open_stream()
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await sim.open_stream()
        assert exc.value.status == 503
        health = await (await sim.session.get(h.base_url + "/healthz")).json()
        assert health["sockets"] == 2


async def test_inbound_frame_over_64_kib_closes_1009(make_server):
    handler = RecordingHandler()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        await handler.wait_for("start")
        await call.send_raw("x" * 60_000)  # under the limit: just malformed
        await call.send_raw('{"event":"media","media":{"payload":"' + "A" * 70_000 + '"}}')
        assert await call.wait_closed() == 1009
        end = await handler.wait_for("end")
    assert end[2] == "error"
    assert handler.calls[0].malformed["json"] == 1


async def test_outbound_buffer_over_the_limit_closes_1013(make_server):
    """Twilio stops reading: the reply's frames pile up unsent until the bound is hit."""
    handler = RecordingHandler(greeting="x" * 3000)  # 60 s of audio
    h = await make_server(
        handler=handler,
        playback_lead_ms=600_000,  # no pacing: everything goes out at once
        max_outbound_buffer_bytes=256 * 1024,
    )
    async with h.simulator() as sim:
        call_sid = random_sid("CA")
        token = await _issue_token(sim, call_sid)
        call = await sim.open_stream(call_sid=call_sid)
        transport = call.ws._response.connection.transport  # Twilio stops reading
        await call.send_start(token=token)
        transport.pause_reading()
        end = await handler.wait_for("end", timeout=20)
        transport.resume_reading()
        assert await call.wait_closed(20) == 1013
    assert end[2] == "error"
    assert str(handler.replies[0].status) == "ReplyStatus.CANCELLED"


async def test_outbound_channel_refuses_and_reports_overflow():
    overflowed: list[int] = []
    gate = asyncio.Event()

    async def stuck(_text: str) -> None:
        await gate.wait()

    channel = OutboundChannel(stuck, lambda: 1000, 10_000, overflowed.append)
    channel.start()
    sent = 0
    while channel.send(OutboundMessage("media", "m" * 1000)):
        sent += 1
    assert overflowed and overflowed[0] > 10_000
    assert 7 <= sent <= 9  # (10 000 - 1000 in the transport) / 1000 per message
    assert channel.closed
    assert not channel.send(OutboundMessage("mark", "{}"))
    assert len(overflowed) == 1
    await channel.close()


async def test_reused_token_closes_1008(make_server):
    h = await make_server()
    async with h.simulator() as sim:
        first = await sim.start_call()
        await h.plugin.stt.wait_for_session()
        replay = await sim.open_stream(call_sid=first.call_sid)
        replay.stream_sid = random_sid("MZ")
        await replay.send_start(token=first.token)
        assert await replay.wait_closed() == 1008
        assert not first.ws.closed


async def test_unknown_token_and_call_close_1008(harness):
    async with harness.simulator() as sim:
        stranger = await sim.open_stream()
        await stranger.send_start(token="A" * 22)
        assert await stranger.wait_closed() == 1008


async def test_wrong_token_does_not_spend_the_real_one(harness):
    async with harness.simulator() as sim:
        call_sid = random_sid("CA")
        token = await _issue_token(sim, call_sid)
        attacker = await sim.open_stream(call_sid=call_sid)
        await attacker.send_start(token="B" * 22)
        assert await attacker.wait_closed() == 1008
        real = await sim.open_stream(call_sid=call_sid)
        await real.send_start(token=token)
        await harness.plugin.stt.wait_for_session()
        assert not real.ws.closed


async def test_missing_token_closes_1008(harness):
    async with harness.simulator() as sim:
        call_sid = random_sid("CA")
        await _issue_token(sim, call_sid)
        call = await sim.open_stream(call_sid=call_sid)
        await call.send_start(custom_parameters={})
        assert await call.wait_closed() == 1008


async def test_expired_token_closes_1008(make_server):
    h = await make_server(token_ttl_s=0.1)
    async with h.simulator() as sim:
        call_sid = random_sid("CA")
        token = await _issue_token(sim, call_sid)
        await asyncio.sleep(0.2)  # the token's lifetime passing is the point of the test
        call = await sim.open_stream(call_sid=call_sid)
        await call.send_start(token=token)
        assert await call.wait_closed() == 1008


async def test_query_string_token_is_a_fallback(harness):
    async with harness.simulator() as sim:
        call_sid = random_sid("CA")
        token = await _issue_token(sim, call_sid)
        url = sim.local_stream_url(harness.settings.stream_url) + f"?token={token}"
        call = await sim.open_stream(url, call_sid=call_sid)
        await call.send_start(custom_parameters={})
        session = await harness.plugin.stt.wait_for_session()
        assert session.request.call_sid == call_sid
        await call.stop()


async def test_second_start_closes_1008(make_server):
    handler = RecordingHandler()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        await handler.wait_for("start")
        await call.send_start()
        assert await call.wait_closed() == 1008
        await handler.wait_for("end")
    assert handler.names().count("start") == 1
    assert handler.names().count("end") == 1


async def test_start_without_call_sid_closes_1008(harness):
    async with harness.simulator() as sim:
        call = await sim.open_stream()
        await call.send_json({"event": "start", "start": {"customParameters": {}}})
        assert await call.wait_closed() == 1008


async def test_healthz_counts_active_calls(harness):
    async with harness.simulator() as sim:
        resp = await sim.session.get(harness.base_url + "/healthz")
        assert resp.status == 200
        assert (await resp.json())["active_calls"] == 0
        call = await sim.start_call()
        await harness.plugin.stt.wait_for_session()
        assert (await (await sim.session.get(harness.base_url + "/healthz")).json())[
            "active_calls"
        ] == 1
        await call.stop()
        body = await (await sim.session.get(harness.base_url + "/healthz")).json()
        assert body["active_calls"] == 0 and body["ended_calls"] == 1


async def test_per_ip_limit_behind_a_trusted_proxy_uses_x_forwarded_for(make_server):
    h = await make_server(max_pending_connections_per_ip=1, trusted_proxy_hops=1)
    async with h.simulator() as sim:
        a = await sim.open_stream(headers={"X-Forwarded-For": "203.0.113.7"})
        b = await sim.open_stream(headers={"X-Forwarded-For": "198.51.100.9, 203.0.113.8"})
        await _until(lambda: len(h.server.pending) == 2)  # two callers, one proxy: both in
        assert h.server.pending.count_for("203.0.113.7") == 1
        assert h.server.pending.count_for("203.0.113.8") == 1
        again = await sim.open_stream(headers={"X-Forwarded-For": "203.0.113.7"})
        assert await again.wait_closed() == 1013
        assert not a.ws.closed and not b.ws.closed


async def test_x_forwarded_for_is_ignored_without_trusted_proxies(make_server):
    h = await make_server(max_pending_connections_per_ip=1)
    async with h.simulator() as sim:
        await sim.open_stream(headers={"X-Forwarded-For": "203.0.113.7"})
        forged = await sim.open_stream(headers={"X-Forwarded-For": "203.0.113.99"})
        assert await forged.wait_closed() == 1013
        assert h.server.pending.count_for("127.0.0.1") == 1
