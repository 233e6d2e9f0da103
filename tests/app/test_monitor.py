"""The live call monitor without a browser: the hub (event order, bounded subscriber queues,
recent calls), the :class:`MonitoringHandler` wrapper, ``GET /monitor/events`` read as a
stream, the access rule with and without ``[records] api_token`` (the page's cookie too),
and ``POST /api/calls/{call_sid}/hangup``."""

from __future__ import annotations

import asyncio
import inspect
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from voicehost.app.assembly import build_serve_app, load_app_config
from voicehost.app.monitor import MAX_TEXT, MonitorHub, Subscriber
from voicehost.app.monitor_handler import MonitoringHandler
from voicehost.app.monitor_routes import (
    COOKIE_NAME,
    CSRF_HEADER,
    MONITOR_HUB_KEY,
    add_monitor_routes,
    cookie_value,
)
from voicehost.config import Settings
from voicehost.plugins import PluginHost
from voicehost.server import CallHandler
from voicehost.server.state import SERVER_KEY
from voicehost.testing import TwilioSimulator
from voicehost.testing.handlers import RecordingHandler
from voicehost.testing.providers import FakeProvidersPlugin

SID = "CA" + "a" * 32
SCRIPT = {"greeting": "Hello there.", "rules": [{"match": r"\bhours\b", "reply": "Nine to five."}]}


class Clock:
    """A settable clock for both of the hub's clocks (s)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def hub_with_clock(**kwargs: Any) -> tuple[MonitorHub, Clock]:
    clock = Clock()
    return MonitorHub(clock=clock, monotonic=clock, **kwargs), clock


def drain(subscriber: Subscriber) -> list[dict[str, Any]]:
    """Every event queued for ``subscriber``, decoded."""
    events = []
    while subscriber._items:
        item = subscriber._items.popleft()
        assert item.startswith(b"data: ") and item.endswith(b"\n\n")
        assert b"\n" not in item[:-2]  # one line per event
        events.append(json.loads(item[6:]))
    return events


# --- the hub -------------------------------------------------------------------------------


def test_events_come_in_order_with_latency_keys_and_barge_ins():
    hub, clock = hub_with_clock()
    watcher = hub.subscribe()
    hub.call_started(SID, from_="+15550100", to="+15550200", direction="inbound")
    hub.on_turn(SID, "bot", "greeting", "Hello there.", 40)
    clock.now += 2.0
    hub.on_partial(SID, "what are")
    clock.now += 0.5
    hub.on_transcript(SID, "  what are your hours ")
    hub.on_turn(SID, "bot", "reply", "Nine to five.", 2900)
    clock.now += 0.5
    hub.on_dtmf(SID, "1")  # at 3000 ms
    hub.on_dtmf(SID, "#")
    hub.on_turn(SID, "event", "barge_in", "reply cut off", 3100)
    clock.now += 1.0
    hub.call_ended(SID, "bot-hangup")

    events = drain(watcher)
    assert [e["type"] for e in events] == [
        "snapshot",
        "call_start",
        "line",
        "interim",
        "interim",  # cleared by the final
        "line",
        "line",
        "line",
        "line",
        "line",
        "call_end",
    ]
    assert events[0]["live"] == [] and events[0]["recent"] == []
    started = events[1]["call"]
    assert (started["call_sid"], started["from"], started["to"], started["direction"]) == (
        SID,
        "+15550100",
        "+15550200",
        "inbound",
    )
    assert started["started_at"] == 1000.0 and started["ended_at"] is None
    assert events[3]["text"] == "what are" and events[4]["text"] == ""
    final = events[5]["line"]
    assert final == {
        "role": "caller",
        "kind": "final",
        "text": "what are your hours",
        "at_ms": 2500,
        "latency_ms": None,
    }
    assert events[2]["line"]["latency_ms"] is None  # a greeting answers nobody
    assert events[6]["line"]["latency_ms"] == 400  # 2900 - 2500
    assert events[8]["keys"] == "1#" and events[8]["line"]["kind"] == "dtmf"
    assert events[9]["barge_ins"] == 1
    ended = events[10]["call"]
    assert ended["end_reason"] == "bot-hangup" and ended["ended_at"] == 1004.0
    assert [line["text"] for line in ended["lines"]] == [
        "Hello there.",
        "what are your hours",
        "Nine to five.",
        "1",
        "#",
        "reply cut off",
    ]
    assert hub.live == {} and [c.call_sid for c in hub.recent] == [SID]


def test_a_late_bot_turn_takes_its_place_by_time_and_caller_turns_are_not_doubled():
    hub, clock = hub_with_clock()
    hub.call_started(SID)
    clock.now += 1.0
    hub.on_transcript(SID, "first")  # at 1000 ms
    clock.now += 3.0
    hub.on_transcript(SID, "second")  # at 4000 ms, while the reply to "first" played
    hub.on_turn(SID, "bot", "reply", "answer to first", 1300)  # reported once played
    hub.on_turn(SID, "caller", "final", "second", 4000)  # the conversation's copy: ignored
    hub.on_turn(SID, "event", "dtmf", "5", 4100)  # so is its key-press event
    hub.on_transcript(SID, "   ")  # blank: ignored
    lines = hub.live[SID].lines
    assert [(x.text, x.at_ms, x.latency_ms) for x in lines] == [
        ("first", 1000, None),
        ("answer to first", 1300, 300),
        ("second", 4000, None),
    ]


def test_unknown_calls_are_ignored_and_turns_after_the_end_reach_the_recent_call():
    hub, _ = hub_with_clock()
    watcher = hub.subscribe()
    drain(watcher)
    hub.on_transcript("CA-unknown", "hello")
    hub.on_partial("CA-unknown", "hel")
    hub.on_turn("CA-unknown", "bot", "reply", "hi", 10)
    hub.call_ended("CA-unknown", "caller-hangup")
    assert drain(watcher) == []
    hub.call_started(SID)
    hub.call_ended(SID, "caller-hangup")
    hub.on_turn(SID, "bot", "reply", "written as the call ended", 50)
    last = drain(watcher)[-1]
    assert last["type"] == "line" and last["call_sid"] == SID
    assert hub.recent[-1].lines[-1].text == "written as the call ended"


def test_the_last_ended_calls_are_kept_newest_first_in_the_snapshot():
    hub, _ = hub_with_clock(recent=2)
    for n in range(3):
        hub.call_started(f"CA{n}")
        hub.on_transcript(f"CA{n}", f"call {n}")
        hub.call_ended(f"CA{n}", "caller-hangup")
    hub.call_started("CAlive")
    snapshot = drain(hub.subscribe())[0]
    assert snapshot["type"] == "snapshot"
    assert [c["call_sid"] for c in snapshot["live"]] == ["CAlive"]
    assert [c["call_sid"] for c in snapshot["recent"]] == ["CA2", "CA1"]
    assert snapshot["recent"][0]["lines"][0]["text"] == "call 2"


def test_a_subscriber_that_falls_behind_is_dropped_and_the_others_go_on():
    hub, _ = hub_with_clock(queue_limit=4)
    slow = hub.subscribe()  # never reads
    fast = hub.subscribe()
    hub.call_started(SID)
    seen = drain(fast)
    for n in range(10):
        hub.on_partial(SID, f"word {n}")  # publishing never waits for anyone
        seen += drain(fast)
    assert slow.dropped and slow.finished and not fast.finished
    assert hub.subscribers == 1
    assert [e["text"] for e in seen if e["type"] == "interim"] == [f"word {n}" for n in range(10)]


def test_lines_and_text_are_bounded():
    hub, _ = hub_with_clock()
    hub.call_started(SID)
    hub.on_transcript(SID, "x" * (MAX_TEXT + 500))
    assert len(hub.live[SID].lines[0].text) == MAX_TEXT
    for n in range(600):
        hub.on_turn(SID, "bot", "reply", f"line {n}", n)
    assert len(hub.live[SID].lines) == 500
    assert hub.live[SID].lines[-1].text == "line 599"


async def test_subscriber_get_waits_times_out_and_ends_when_closed():
    subscriber = Subscriber(limit=2)
    assert await subscriber.get(0.01) is None  # nothing: a heartbeat is due
    subscriber.push(b"data: {}\n\n")
    assert await subscriber.get(5) == b"data: {}\n\n"
    waiting = asyncio.ensure_future(subscriber.get(30))
    await asyncio.sleep(0)
    subscriber.close()
    assert await waiting is None and subscriber.finished
    assert not subscriber.push(b"data: {}\n\n")


# --- the wrapper ---------------------------------------------------------------------------


class FakeCall:
    call_sid = SID
    from_ = "+15550100"
    to = "+15550200"
    direction = "outbound-api"
    answered_by = "human"


def test_the_wrapper_passes_on_every_callback_of_call_handler():
    callbacks = [
        name
        for name, _ in inspect.getmembers(CallHandler, inspect.iscoroutinefunction)
        if name.startswith("on_")
    ]
    assert set(callbacks) >= {"on_call_start", "on_transcript", "on_call_end", "on_call_event"}
    for name in callbacks:  # a callback added to CallHandler later must be passed on too
        assert name in MonitoringHandler.__dict__, f"MonitoringHandler does not pass on {name}"


async def test_the_wrapper_tells_the_hub_and_the_inner_handler():
    hub, _ = hub_with_clock()
    inner = RecordingHandler()
    inner.store = "the store"  # any attribute of the inner handler shows through
    handler = MonitoringHandler(inner, hub)
    call = FakeCall()
    await handler.on_call_start(call)
    await handler.on_partial(call, "hel")
    await handler.on_transcript(call, "hello")
    await handler.on_speech_start(call)
    await handler.on_dtmf(call, "7")
    await handler.on_call_end(call, "caller-hangup")
    assert inner.names() == ["start", "partial", "final", "speech_start", "dtmf", "end"]
    assert handler.store == "the store"
    (ended,) = hub.recent
    assert (ended.direction, ended.answered_by, ended.keys, ended.end_reason) == (
        "outbound-api",
        "human",
        "7",
        "caller-hangup",
    )
    assert [x.text for x in ended.lines] == ["hello", "7"]


async def test_a_failing_hub_or_inner_handler_does_not_lose_the_other():
    class BrokenHub(MonitorHub):
        def on_transcript(self, call_sid: str, text: str) -> None:
            raise RuntimeError("monitor bug")

    class FailingEnd(RecordingHandler):
        async def on_call_end(self, call: Any, reason: str) -> None:
            raise RuntimeError("handler bug")

    hub = BrokenHub()
    inner = FailingEnd()
    handler = MonitoringHandler(inner, hub)
    call = FakeCall()
    await handler.on_call_start(call)
    await handler.on_transcript(call, "hello")  # the hub's bug is logged, the call goes on
    assert inner.names() == ["start", "final"]
    with pytest.raises(RuntimeError, match="handler bug"):
        await handler.on_call_end(call, "caller-hangup")
    assert hub.live == {} and hub.recent[0].end_reason == "caller-hangup"


# --- routes ----------------------------------------------------------------------------------


@pytest.fixture
async def rig(tmp_path) -> AsyncIterator[Any]:
    """``await rig(api_token="")``: a running ``build_serve_app`` with the fake providers and
    the scripted responder; returns (fakes, simulator, server)."""
    made: list[tuple[TwilioSimulator, TestServer]] = []

    async def make(api_token: str = "") -> tuple[FakeProvidersPlugin, TwilioSimulator, Any]:
        host = PluginHost()
        host.load_builtins()
        fakes = FakeProvidersPlugin()
        host.register(fakes, name="voicehost-fakes")
        settings = Settings.from_dict(
            {
                "stt": {"provider": "fake"},
                "tts": {"provider": "fake", "fake": {"ms_per_char": 1}},
                "responder": {"provider": "scripted", "scripted": SCRIPT},
                "records": {"path": str(tmp_path / "calls.db"), "api_token": api_token},
            }
        )
        app = build_serve_app(load_app_config(settings=settings, host=host))

        @web.middleware  # requests with X-Test-Remote come "from" that address
        async def forge(request: web.Request, handler: Any) -> web.StreamResponse:
            remote = request.headers.get("X-Test-Remote")
            return await handler(request.clone(remote=remote) if remote else request)

        app.middlewares.append(forge)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        sim = TwilioSimulator(str(server.make_url("")), speed=math.inf)
        await sim.__aenter__()
        made.append((sim, server))
        return fakes, sim, server

    yield make
    for sim, server in made:
        await sim.close()
        await server.close()


class EventStream:
    """Reads ``GET /monitor/events`` line by line."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, timeout_s: float = 10.0) -> str:
        """The next non-empty line (``data: …``, ``: ping`` or ``retry: …``)."""
        while True:
            line = await asyncio.wait_for(self.response.content.readline(), timeout_s)
            if not line:
                raise EOFError("the stream ended")
            if line.strip():
                return line.decode().rstrip("\n")

    async def event(self, kind: str | None = None) -> dict[str, Any]:
        """The next ``data:`` event (of type ``kind`` when given)."""
        while True:
            line = await self.next()
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if kind is None or event["type"] == kind:
                    return event


async def test_event_stream_sends_a_snapshot_then_the_call_as_it_happens(rig):
    fakes, sim, server = await rig()
    async with sim.session.get(server.make_url("/monitor/events")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["Cache-Control"] == "no-store"
        stream = EventStream(response)
        assert await stream.next() == "retry: 3000"
        snapshot = await stream.event()
        assert snapshot["type"] == "snapshot" and snapshot["live"] == []

        call = await sim.start_call(from_="+15550100", to="+15550200")
        started = await stream.event("call_start")
        assert started["call"]["call_sid"] == call.call_sid
        assert started["call"]["from"] == "+15550100"
        stt = await fakes.stt.wait_for_session()
        stt.partial("what are")
        interim = await stream.event("interim")
        assert (interim["call_sid"], interim["text"]) == (call.call_sid, "what are")
        stt.final("what are your hours")
        line = await stream.event("line")
        while line["line"]["role"] != "caller":  # the bot's greeting, once it has played
            line = await stream.event("line")
        assert line["line"]["text"] == "what are your hours"
        await call.dtmf("5")
        keys = await stream.event("line")
        while keys["line"]["kind"] != "dtmf":  # the bot's reply lines
            keys = await stream.event("line")
        assert keys["keys"] == "5"
        await call.stop()
        ended = await stream.event("call_end")
        assert ended["call"]["end_reason"] == "caller-hangup"
        assert [x["text"] for x in ended["call"]["lines"] if x["role"] == "caller"] == [
            "what are your hours",
            "5",
        ]
        # the conversation's bot turns reach the page too (its turn observer)
        assert any(x["role"] == "bot" and x["text"] for x in ended["call"]["lines"])
    hub = server.app[MONITOR_HUB_KEY]
    assert hub.recent[-1].call_sid == call.call_sid


async def test_event_stream_sends_heartbeats_and_ends_at_shutdown():
    hub = MonitorHub()
    app = web.Application()
    add_monitor_routes(app, hub, heartbeat_s=0.05)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        response = await client.get("/monitor/events")
        stream = EventStream(response)
        assert (await stream.event())["type"] == "snapshot"
        assert await stream.next() == ": ping"
        assert hub.subscribers == 1
        await app.shutdown()  # what the server's shutdown runs first
        with pytest.raises(EOFError):
            while True:
                await stream.next()
        assert hub.subscribers == 0
    finally:
        await client.close()


async def test_without_a_token_only_loopback_clients_are_served(rig):
    _, sim, server = await rig()
    session = sim.session
    remote = {"X-Test-Remote": "203.0.113.9"}
    for path in ("/monitor", "/monitor/events"):
        async with session.get(server.make_url(path), headers=remote) as response:
            assert response.status == 403
            body = await response.json()
            assert "the monitor is served to loopback clients only" in body["error"]
    async with session.post(server.make_url(f"/api/calls/{SID}/hangup"), headers=remote) as r:
        assert r.status == 403
    async with session.get(server.make_url("/monitor")) as response:
        assert response.status == 200 and response.content_type == "text/html"
        page = await response.text()
        csp = response.headers["Content-Security-Policy"]
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in page and "{{nonce}}" not in page
    assert "EventSource" in page and "default-src 'none'" in csp


async def test_with_a_token_the_page_sets_a_cookie_and_the_cookie_opens_the_monitor(rig):
    _, _, server = await rig(api_token="s3cret")
    remote = {"X-Test-Remote": "203.0.113.9"}
    jar = aiohttp.CookieJar(unsafe=True)  # keeps cookies of an IP address, as a browser does
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        # Loopback is not enough once a token is set.
        async with session.get(server.make_url("/monitor")) as response:
            assert response.status == 401
        async with session.get(
            server.make_url("/monitor"), params={"token": "wrong"}, headers=remote
        ) as response:
            assert response.status == 401 and not session.cookie_jar.filter_cookies(
                server.make_url("/")
            )
        async with session.get(
            server.make_url("/monitor"),
            params={"token": "s3cret"},
            headers=remote,
            allow_redirects=False,
        ) as response:
            assert response.status == 303 and response.headers["Location"] == "monitor"
            cookie = response.cookies[COOKIE_NAME]
            assert cookie.value == cookie_value("s3cret") != "s3cret"
            assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
        async with session.get(server.make_url("/monitor"), headers=remote) as response:
            assert response.status == 200 and response.content_type == "text/html"
        async with session.get(server.make_url("/monitor/events"), headers=remote) as response:
            assert response.status == 200
            assert (await EventStream(response).event())["type"] == "snapshot"
        # The cookie opens the monitor, not the records.
        async with session.get(server.make_url("/api/calls"), headers=remote) as response:
            assert response.status == 401
        # A hang-up by cookie must say it comes from the page.
        url = server.make_url(f"/api/calls/{SID}/hangup")
        async with session.post(url, headers=remote) as response:
            assert response.status == 403 and CSRF_HEADER in (await response.json())["error"]
        async with session.post(url, headers={**remote, CSRF_HEADER: "1"}) as response:
            assert response.status == 404  # allowed; no such live call

    async with aiohttp.ClientSession() as other:  # no cookie: bearer header or ?token=
        events = server.make_url("/monitor/events")
        async with other.get(events, headers=remote) as response:
            assert response.status == 401
        async with other.get(events, params={"token": "s3cret"}, headers=remote) as response:
            assert response.status == 200
        bearer = {**remote, "Authorization": "Bearer s3cret"}
        async with other.get(events, headers=bearer) as response:
            assert response.status == 200
        async with other.get(server.make_url("/monitor"), headers=bearer) as response:
            assert response.status == 200
        async with other.post(server.make_url(f"/api/calls/{SID}/hangup"), headers=bearer) as r:
            assert r.status == 404


async def test_hangup_api_ends_a_live_call_and_404s_an_unknown_one(rig):
    fakes, sim, server = await rig()
    session = sim.session
    async with session.post(server.make_url(f"/api/calls/{SID}/hangup")) as response:
        assert response.status == 404
        assert "no live call" in (await response.json())["error"]
    call = await sim.start_call()
    await fakes.stt.wait_for_session()
    async with session.post(server.make_url(f"/api/calls/{call.call_sid}/hangup")) as response:
        assert response.status == 200
        assert await response.json() == {"call_sid": call.call_sid, "hung_up": True}
    assert await call.wait_closed(timeout=10) == 1000
    live = server.app[SERVER_KEY]
    for _ in range(500):  # the call ends in its own task after the socket closed
        if not live.calls:
            break
        await asyncio.sleep(0.01)
    hub = server.app[MONITOR_HUB_KEY]
    assert hub.recent[-1].call_sid == call.call_sid
    assert hub.recent[-1].end_reason == "bot-hangup"
    async with session.post(server.make_url(f"/api/calls/{call.call_sid}/hangup")) as response:
        assert response.status == 404  # no longer live
