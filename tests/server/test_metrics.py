"""``GET /metrics``: Prometheus metrics that move as simulated calls did, the /api/calls
access rule, the ``[observability] metrics`` switch, and the cheap per-frame counting.

The registry is process-global (every app of the test session counts into it), so every
check compares a scrape before with one after (deltas), parsed with prometheus_client's own
parser.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from voicehost import metrics
from voicehost.app.assembly import build_serve_app, load_app_config
from voicehost.config import Settings
from voicehost.plugins import PluginHost
from voicehost.server import ServerSettings, build_app
from voicehost.server.outbound import OutboundChannel, OutboundMessage
from voicehost.server.playback import Playback, ReplyStatus
from voicehost.testing.handlers import RecordingHandler
from voicehost.testing.providers import (
    FakeProvidersPlugin,
    FakeSpeechProvider,
    FakeTTSConfig,
    tone,
)
from voicehost.testing.twilio import random_sid

LONG = "This reply goes on and on. " * 20  # about 11 s of fake TTS audio
SID = "MZ" + "0" * 32

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(autouse=True)
def _metrics_on() -> Iterator[None]:
    """Every test starts, and leaves the process, with metrics on."""
    metrics.set_enabled(True)
    yield
    metrics.set_enabled(True)


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def counted(samples: Samples) -> Samples:
    """voicehost's own samples (not the process collector's, not ``_created``)."""
    return {
        key: v
        for key, v in samples.items()
        if key[0].startswith("voicehost_") and not key[0].endswith("_created")
    }


def registry_samples() -> Samples:
    """The registry as ``/metrics`` would serve it, without HTTP."""
    return parse(generate_latest(metrics.REGISTRY).decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def scrape(base_url: str, **headers: str) -> tuple[int, str, str]:
    async with (
        ClientSession() as session,
        session.get(base_url + "/metrics", headers=headers) as resp,
    ):
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def samples_of(base_url: str) -> Samples:
    status, content_type, text = await scrape(base_url)
    assert status == 200, text
    assert content_type.startswith("text/plain")
    return parse(text)


async def until(condition: Callable[[], Any], within: float = 10.0) -> None:
    async def poll() -> None:
        while not await condition():  # noqa: ASYNC110 - the server's state, polled over HTTP
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), within)


# --- end to end --------------------------------------------------------------------------------


async def test_metrics_move_as_the_simulated_calls_did(make_server):
    handler = RecordingHandler(greeting="Hello there")
    h = await make_server(handler=handler)
    before = await samples_of(h.base_url)
    async with h.simulator() as sim:
        # Call 1, inbound: the caller talks, hears the greeting, barges in over a long reply,
        # sends junk, and hangs up.
        call = await sim.start_call()
        session = await h.plugin.stt.wait_for_session()
        await handler.wait_for("start")
        during = await samples_of(h.base_url)
        await call.play(tone(0.2))  # 10 frames
        await session.wait_for_bytes(1600)
        await call.wait_for(lambda: "reply-1" in call.echoed_marks)
        long_reply = handler.calls[0].say(LONG)
        await call.wait_for_audio(seconds=len("Hello there") * 0.02 + 0.3)
        session.speech_start()
        await call.wait_for_event("clear")
        assert await long_reply == ReplyStatus.CANCELLED
        await call.send_raw("{not json")
        await call.send_raw(b"\x00\x01")
        await call.send_json({"event": "bogus", "streamSid": call.stream_sid})
        await call.dtmf("5")  # handled after the junk: the junk was counted by then
        await handler.wait_for("dtmf")
        await call.stop()
        await handler.wait_for_call_event(call.call_sid, "ended")

        # Call 2, outbound: the bot hangs up with a reason of its own (counted as "other").
        call2 = await sim.start_call(
            direction="outbound-api", extra_params={"CallStatus": "in-progress"}
        )
        await handler.wait_for("start", count=2)
        await call2.wait_for(lambda: "reply-1" in call2.echoed_marks)
        await handler.calls[1].hangup("handler-says-bye")
        await call2.wait_closed()
        await handler.wait_for_call_event(call2.call_sid, "ended")

        # Call 3, outbound: busy, never streamed.
        busy_sid = random_sid("CA")
        reply = await sim.post_status(busy_sid, "busy", Direction="outbound-api")
        assert reply.status == 204
        await handler.wait_for_call_event(busy_sid, "ended")

    async def settled() -> bool:
        now = await samples_of(h.base_url)
        return value(now, "voicehost_websocket_connections") == value(
            before, "voicehost_websocket_connections"
        )

    await until(settled)
    after = await samples_of(h.base_url)

    assert delta(before, during, "voicehost_active_calls") == 1
    assert delta(before, during, "voicehost_websocket_connections") == 1
    assert delta(before, after, "voicehost_active_calls") == 0
    calls = "voicehost_calls_total"
    assert delta(before, after, calls, direction="inbound", end_reason="caller-hangup") == 1
    assert delta(before, after, calls, direction="outbound", end_reason="other") == 1
    assert delta(before, after, calls, direction="outbound", end_reason="busy") == 1
    assert sum(v for (n, _), v in after.items() if n == calls) - sum(
        v for (n, _), v in before.items() if n == calls
    ) == pytest.approx(3)

    frames = "voicehost_media_frames_total"
    assert delta(before, after, frames, direction="inbound") == 10
    received = len(call.events_of("media")) + len(call2.events_of("media"))
    assert received > 0
    assert delta(before, after, frames, direction="outbound") == received
    lateness = delta(before, after, "voicehost_pacing_lateness_seconds_count")
    assert lateness >= received  # every frame handed to the socket (some purged by the clear)

    assert delta(before, after, "voicehost_barge_ins_total") == 1
    malformed = "voicehost_malformed_messages_total"
    for kind in ("json", "binary", "unknown_event"):
        assert delta(before, after, malformed, kind=kind) == 1
    assert delta(before, after, malformed, kind="base64") == 0

    first_byte = "voicehost_tts_first_byte_seconds_count"
    assert delta(before, after, first_byte, provider="fake") == len(h.plugin.tts.syntheses) == 3
    version = importlib.metadata.version("voicehost")
    assert value(after, "voicehost_build_info", version=version) == 1

    # Bounded labels: no call or stream SID, no phone number anywhere.
    sids = {call.call_sid, call.stream_sid, call2.call_sid, call2.stream_sid, busy_sid}
    for _name, labels in after:
        for _label, label_value in labels:
            assert label_value not in sids
            assert not re.fullmatch(r"(CA|MZ|AC)[0-9a-f]{32}", label_value)
            assert not re.search(r"\+\d{6,}", label_value)  # a phone number


async def test_openmetrics_when_the_scraper_asks_for_it(harness):
    status, content_type, text = await scrape(
        harness.base_url, Accept="application/openmetrics-text; version=1.0.0"
    )
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    names = {family.name for family in openmetrics_families(text)}
    assert {"voicehost_calls", "voicehost_media_frames", "voicehost_active_calls"} <= names


# --- who may read it ---------------------------------------------------------------------------


async def test_with_an_api_token_the_bearer_token_is_required(make_server):
    h = await make_server(api_token="s3cret-token")
    status, _, text = await scrape(h.base_url)
    assert status == 401 and "bearer token" in text
    status, _, _ = await scrape(h.base_url, Authorization="Bearer wrong")
    assert status == 401
    status, _, text = await scrape(h.base_url, Authorization="Bearer s3cret-token")
    assert status == 200 and "voicehost_calls" in text


@pytest.fixture
async def forged_client() -> AsyncIterator[Callable[..., Any]]:
    """``await forged_client(**build_app_kwargs)``: a test client whose requests come from
    the address in their ``X-Test-Remote`` header (as if the peer were there)."""
    clients: list[TestClient[Any, Any]] = []

    async def make(**kwargs: Any) -> TestClient[Any, Any]:
        app = build_app(ServerSettings(), **kwargs)

        @web.middleware
        async def forge(request: web.Request, handler: Any) -> web.StreamResponse:
            remote = request.headers.get("X-Test-Remote")
            return await handler(request.clone(remote=remote) if remote else request)

        app.middlewares.append(forge)
        client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_without_a_token_only_loopback_clients_are_served(forged_client):
    client = await forged_client()
    for remote in ("203.0.113.9", "10.0.0.2", "not-an-ip"):
        resp = await client.get("/metrics", headers={"X-Test-Remote": remote})
        assert resp.status == 403
        assert "metrics are served to loopback clients only" in (await resp.json())["error"]
    resp = await client.get("/metrics", headers={"X-Test-Remote": "::1"})
    assert resp.status == 200
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert "voicehost_active_calls" in await resp.text()


async def test_a_token_lets_a_remote_client_in(forged_client):
    client = await forged_client(api_token="tok")
    headers = {"X-Test-Remote": "203.0.113.9"}
    assert (await client.get("/metrics", headers=headers)).status == 401
    headers["Authorization"] = "Bearer tok"
    assert (await client.get("/metrics", headers=headers)).status == 200


# --- the switch --------------------------------------------------------------------------------


async def test_switched_off_nothing_is_counted_and_metrics_answer_404(make_server):
    handler = RecordingHandler(greeting="Hi")
    h = await make_server(handler=handler, observability={"metrics": False})
    assert not metrics.enabled()
    status, _, _ = await scrape(h.base_url)
    assert status == 404
    before = registry_samples()
    async with h.simulator() as sim:
        call = await sim.start_call()
        session = await h.plugin.stt.wait_for_session()
        await call.play(tone(0.1))
        await session.wait_for_bytes(800)
        await call.wait_for(lambda: "reply-1" in call.echoed_marks)
        await call.send_raw("{junk")
        await call.stop()
        await handler.wait_for_call_event(call.call_sid, "ended")
    assert counted(registry_samples()) == counted(before)


def test_helpers_are_no_ops_while_off():
    before = registry_samples()
    metrics.set_enabled(False)
    metrics.count_call_ended("inbound", "caller-hangup")
    metrics.count_barge_in()
    metrics.count_plugin_load_failure()
    metrics.count_vendor_error("fake", "synthesis")
    metrics.count_stt_reconnect("fake")
    metrics.count_malformed("json")
    metrics.count_backlog_close()
    metrics.observe_turn_latency(0.5)
    metrics.observe_stt_final_latency("fake", 0.2)
    metrics.observe_responder_first_token("fake", 0.3)
    metrics.observe_tts_first_byte("fake", 0.1)
    tally = metrics.media_tally()
    tally.frames_in += 5
    tally.late(0.01)
    metrics.set_enabled(True)
    assert counted(registry_samples()) == counted(before)


def test_helpers_count_with_bounded_labels():
    before = registry_samples()
    metrics.count_plugin_load_failure()
    metrics.observe_turn_latency(0.42)
    metrics.observe_turn_latency(-1.0)  # a clock gone backwards is not an observation
    metrics.observe_stt_final_latency("x" * 200, 0.2)  # an absurd id is not a label
    metrics.observe_responder_first_token(FakeSpeechProvider(), 0.3)  # an object: its id
    metrics.count_vendor_error("fake", "not-a-kind")
    metrics.count_malformed("weird")
    metrics.count_call_ended("outbound-dial", "idle")
    after = registry_samples()
    assert delta(before, after, "voicehost_plugin_load_failures_total") == 1
    assert delta(before, after, "voicehost_turn_latency_seconds_count") == 1
    assert delta(before, after, "voicehost_turn_latency_seconds_bucket", le="0.5") == 1
    assert delta(before, after, "voicehost_turn_latency_seconds_bucket", le="0.3") == 0
    stt = "voicehost_stt_final_latency_seconds_count"
    assert delta(before, after, stt, provider="unknown") == 1
    responder = "voicehost_responder_first_token_seconds_count"
    assert delta(before, after, responder, provider="fake") == 1
    errors = "voicehost_vendor_errors_total"
    assert delta(before, after, errors, provider="fake", kind="other") == 1
    assert delta(before, after, "voicehost_malformed_messages_total", kind="other") == 1
    calls = "voicehost_calls_total"
    assert delta(before, after, calls, direction="outbound", end_reason="idle") == 1
    assert metrics.call_direction("") == "unknown"


# --- the transport's counting, unit by unit ----------------------------------------------------


class OversleepingClock:
    """Monotonic seconds; every sleep wakes up exactly ``late`` seconds late."""

    def __init__(self, late: float) -> None:
        self.now = 500.0
        self.late = late

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += delay + self.late
        await asyncio.sleep(0)


async def _sink(_text: str) -> None:
    return None


def _playback(config: dict[str, Any], clock: OversleepingClock) -> Playback:
    channel = OutboundChannel(_sink, lambda: 0, 1 << 30, lambda _n: None)
    channel.start()
    return Playback(
        channel,
        SID,
        FakeSpeechProvider(),
        FakeTTSConfig.model_validate(config),
        clock=clock,
        sleep=clock.sleep,
    )


async def test_pacing_lateness_is_each_late_wakeup_never_accumulated():
    clock = OversleepingClock(late=0.003)
    playback = _playback({"seconds": 1.0}, clock)
    before = registry_samples()
    reply = playback.say("one second")
    while reply.frames_sent < 50 or playback._active is not None:  # noqa: ASYNC110
        await asyncio.sleep(0)
    after = registry_samples()
    await playback.close()
    name = "voicehost_pacing_lateness_seconds"
    assert delta(before, after, name + "_count") == 50
    on_time = delta(before, after, name + "_bucket", le="0.002")
    late = delta(before, after, name + "_bucket", le="0.005") - on_time
    assert on_time + late == 50
    assert 5 <= on_time <= 7  # the lead (100 ms) goes out at once
    assert delta(before, after, name + "_sum") == pytest.approx(late * 0.003)
    assert reply.first_audio_at == 500.0
    first_byte = "voicehost_tts_first_byte_seconds_count"
    assert delta(before, after, first_byte, provider="fake") == 1


async def test_a_failed_synthesis_is_a_vendor_error():
    playback = _playback({"fail_after_chunks": 1}, OversleepingClock(late=0.0))
    before = registry_samples()
    reply = playback.say("this fails")
    with pytest.raises(Exception, match="dropped the stream"):
        await reply
    after = registry_samples()
    await playback.close()
    errors = "voicehost_vendor_errors_total"
    assert delta(before, after, errors, provider="fake", kind="synthesis") == 1


async def test_an_outbound_backlog_close_is_counted():
    closed: list[int] = []
    channel = OutboundChannel(_sink, lambda: 0, 100, closed.append)
    before = registry_samples()
    assert channel.send(OutboundMessage("media", "x" * 50))
    assert not channel.send(OutboundMessage("media", "x" * 60))
    after = registry_samples()
    assert closed and delta(before, after, "voicehost_outbound_backlog_closes_total") == 1
    await channel.close()


async def test_stt_that_never_connects_and_reported_errors_are_vendor_errors(make_server):
    handler = RecordingHandler()
    h = await make_server(handler=handler, stt_config={"fail_connect": True})
    before = registry_samples()
    async with h.simulator() as sim:
        call = await sim.start_call()
        session = await h.plugin.stt.wait_for_session()
        await handler.wait_for("start")
        transcription = handler.calls[0].transcription

        async def failed() -> bool:
            return transcription.failed

        await until(failed)
        session.request.callbacks.on_error(RuntimeError("vendor hiccup"))
        await call.stop()
        await handler.wait_for_call_event(call.call_sid, "ended")
    after = registry_samples()
    errors = "voicehost_vendor_errors_total"
    assert delta(before, after, errors, provider="fake", kind="unavailable") == 1
    assert delta(before, after, errors, provider="fake", kind="reported") == 1


# --- through plugins.toml ----------------------------------------------------------------------


async def _serve_app_status(tables: dict[str, Any], **headers: str) -> int:
    """The status of ``GET /metrics`` on the app ``serve`` runs for ``tables`` (+ fakes)."""
    host = PluginHost()
    host.load_builtins()
    host.register(FakeProvidersPlugin(), name="voicehost-fakes")
    document = {
        "stt": {"provider": "fake"},
        "tts": {"provider": "fake"},
        "records": {"enabled": False},
        **tables,
    }
    config = load_app_config(settings=Settings.from_dict(document, environ={}), host=host)
    async with TestClient(TestServer(build_serve_app(config), host="127.0.0.1")) as client:
        return (await client.get("/metrics", headers=headers)).status


async def test_the_observability_table_and_the_records_token_reach_the_route():
    assert await _serve_app_status({}) == 200
    token = {"records": {"enabled": False, "api_token": "tok"}}
    assert await _serve_app_status(token) == 401
    assert await _serve_app_status(token, Authorization="Bearer tok") == 200
    assert await _serve_app_status({"observability": {"metrics": False}}) == 404
    assert not metrics.enabled()


def test_a_plugin_that_fails_to_register_is_counted():
    from voicehost import hookimpl
    from voicehost.plugins import PluginHost

    class Broken:
        @hookimpl
        def register_speech_providers(self, register):
            raise RuntimeError("cannot start")

    host = PluginHost(report=lambda _line: None)
    before = registry_samples()
    record = host.register(Broken(), name="voicehost-broken")
    after = registry_samples()
    assert record.status == "failed"
    assert delta(before, after, "voicehost_plugin_load_failures_total") == 1
