"""End to end through the real server and Twilio simulator: fake STT/TTS providers registered
through the real plugin host, the real scripted responder and call records.

Greeting plays at stream start; a final transcript gets a spoken reply; barge-in during a long
reply stops it and is recorded (the reply keeps only what the caller heard); a hang-up rule
ends the call; the record reads back through ``GET /api/calls/{call_sid}``.
"""

from __future__ import annotations

import asyncio
import math

import pytest
from aiohttp.test_utils import TestServer

from voicehost.app.assembly import build_serve_app, load_app_config
from voicehost.config import Settings
from voicehost.conversation import ResponderCallHandler
from voicehost.plugins import PluginHost
from voicehost.records import read_call
from voicehost.testing import TwilioSimulator
from voicehost.testing.providers import FakeProvidersPlugin, FakeTTSConfig

SCRIPT = {
    "greeting": "Hello there.",
    "fallback": "Pardon?",
    "rules": [
        {"match": r"\bbye\b", "reply": "Goodbye.", "hangup": True},
        {"match": r"\bhours\b", "reply": "Nine to five."},
        # About 6.8 s of fake speech (10 ms a character), so barge-in surely cuts it; no
        # comma, so it is said as one piece (not cut after its first clause).
        {"match": r"\bstory\b", "reply": "Once upon a time " * 40},
    ],
}


@pytest.fixture
async def rig(tmp_path):
    """A running server with fakes + scripted responder; yields (plugin, simulator, db)."""
    host = PluginHost()
    host.load_builtins()
    fakes = FakeProvidersPlugin()
    host.register(fakes, name="voicehost-fakes")
    db = tmp_path / "calls.db"
    settings = Settings.from_dict(
        {
            "stt": {"provider": "fake"},
            # 10 ms of tone per character: "Nine to five." lasts 130 ms.
            "tts": {"provider": "fake", "fake": {"ms_per_char": 10}},
            "responder": {"provider": "scripted", "scripted": SCRIPT},
            "records": {"path": str(db)},
        }
    )
    app = build_serve_app(load_app_config(settings=settings, host=host))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with TwilioSimulator(str(server.make_url("")), speed=math.inf) as sim:
        yield fakes, sim, db, server
    await server.close()


def spoken(fakes: FakeProvidersPlugin) -> list[str]:
    return [s.text for s in fakes.tts.syntheses]


async def test_greeting_reply_and_hangup_are_spoken_and_recorded(rig):
    fakes, sim, db, server = rig
    call = await sim.start_call(from_="+15550100", to="+15550200")
    stt = await fakes.stt.wait_for_session()
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-1")
    assert spoken(fakes) == ["Hello there."]
    greeting_bytes = len(call.received_audio)
    assert greeting_bytes >= len(fakes.tts.audio_for("Hello there.", FakeTTSConfig(ms_per_char=10)))

    stt.final("what are your hours")
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-2")
    assert spoken(fakes) == ["Hello there.", "Nine to five."]
    assert len(call.received_audio) > greeting_bytes

    stt.final("ok bye")
    assert await call.wait_closed(timeout=15) == 1000  # hung up after "Goodbye." played
    assert spoken(fakes)[-1] == "Goodbye."
    assert "reply-3" in call.echoed_marks

    await _wait_ended(server, call.call_sid, db)
    record = read_call(db, call.call_sid)
    assert (record["from"], record["to"], record["end_reason"]) == (
        "+15550100",
        "+15550200",
        "bot-hangup",  # HangUp.reason becomes the call's end reason
    )
    turns = [(t["role"], t["kind"], t["text"]) for t in record["turns"]]
    assert turns == [
        ("bot", "greeting", "Hello there."),
        ("caller", "final", "what are your hours"),
        ("bot", "reply", "Nine to five."),
        ("caller", "final", "ok bye"),
        ("bot", "reply", "Goodbye."),
    ]
    times = [t["at_ms"] for t in record["turns"]]
    assert times == sorted(times)

    async with sim.session.get(server.make_url(f"/api/calls/{call.call_sid}")) as response:
        assert response.status == 200
        assert await response.json() == record


async def test_barge_in_stops_a_long_reply_and_is_recorded(rig):
    fakes, sim, db, server = rig
    call = await sim.start_call()
    stt = await fakes.stt.wait_for_session()
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-1")

    stt.final("tell me a story")
    await call.wait_for_audio(len(call.received_audio) + 1600, timeout=10)  # 0.2 s of it
    stt.speech_start()  # the caller talks over the bot
    await call.wait_for_event("clear", timeout=10)
    story = next(s for s in fakes.tts.syntheses if "Once upon" in s.text)
    await call.wait_for(lambda: story.closed_at is not None, timeout=10)
    assert not story.completed  # synthesis was stopped, not run to its end
    sent_at_clear = len(call.received_audio)

    stt.final("what are your hours")  # the call goes on
    await call.wait_for(lambda: "Nine to five." in spoken(fakes), timeout=10)
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-3")
    # What followed the clear is the short answer, not the rest of the story (6.8 s).
    assert len(call.received_audio) - sent_at_clear < 8000
    await call.stop()
    await _wait_ended(server, call.call_sid, db)
    record = read_call(db, call.call_sid)
    kinds = [(t["role"], t["kind"]) for t in record["turns"]]
    # The story is one long sentence and none of it played to its end: the caller heard no
    # whole sentence of it, so no bot turn is kept for it (only the barge-in).
    assert kinds == [
        ("bot", "greeting"),
        ("caller", "final"),
        ("event", "barge_in"),
        ("caller", "final"),
        ("bot", "reply"),
    ]
    assert record["end_reason"] == "caller-hangup"


async def test_dtmf_is_recorded(rig):
    fakes, sim, db, server = rig
    call = await sim.start_call()
    await fakes.stt.wait_for_session()
    await call.dtmf("7")
    await call.stop()
    await _wait_ended(server, call.call_sid, db)
    turns = read_call(db, call.call_sid)["turns"]
    assert ("event", "dtmf", "7") in [(t["role"], t["kind"], t["text"]) for t in turns]


async def _wait_ended(server: TestServer, call_sid: str, db) -> None:
    """Wait until the server ended the call and the record store committed its end."""
    from voicehost.server import SERVER_KEY

    call_server = server.app[SERVER_KEY]
    live = call_server.calls.get(call_sid)
    if live is not None:
        await live.wait_ended()
    handler = call_server.handler.inner  # under the live monitor's MonitoringHandler
    assert isinstance(handler, ResponderCallHandler) and handler.store is not None
    await handler.store.flush()
    # The ``ended`` lifecycle event is handed to the handler in its own task after the call
    # ended: wait for it too, so the record no longer changes.
    for _ in range(500):
        if any(e["event"] == "ended" for e in read_call(db, call_sid)["events"]):
            return
        await asyncio.sleep(0.01)
        await handler.store.flush()
