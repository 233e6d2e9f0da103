"""Speech-to-speech calls end to end: ``[conversation] provider = "openai-realtime"`` on the
app ``voicehost serve`` runs, the official ``openai`` SDK talking to the local Realtime fake
(tests/fakes/openai_realtime_conversation.py), Twilio played by the simulator. The greeting
plays paced, both sides are recorded, barge-in truncates at the audio played, hang-up waits
for the goodbye's marks, DTMF decodes back, and a dropped vendor socket is replaced without
losing the caller's audio."""

from __future__ import annotations

import math

import pytest
from aiohttp.test_utils import TestServer

import voicehost_openai_realtime
from voicehost.app.assembly import build_serve_app, load_app_config
from voicehost.config import Settings
from voicehost.dtmf import detect_dtmf
from voicehost.plugins import PluginHost
from voicehost.records import read_call
from voicehost.server import SERVER_KEY
from voicehost.testing import TwilioSimulator
from voicehost.testing.tones import tone

GREETING = "Hello, thanks for calling."


@pytest.fixture
async def serve(realtime_fake, tmp_path):
    """``start(speed)`` → (simulator, server, handler): the app on the Realtime fake."""
    running: list = []
    realtime_fake.greeting_audio = tone(0.4)
    realtime_fake.greeting_transcript = GREETING

    async def start(speed: float = math.inf):
        host = PluginHost()
        host.load_builtins()
        host.register(voicehost_openai_realtime, name="voicehost-openai-realtime")
        table = {
            "api_key": "sk-test",
            "base_url": realtime_fake.base_url,
            "greeting": GREETING,
            "tools": ["hangup", "send_dtmf"],
        }
        settings = Settings.from_dict(
            {
                "conversation": {"provider": "openai-realtime", "openai-realtime": table},
                "records": {"path": str(tmp_path / "calls.db")},
            },
            environ={},
        )
        app = build_serve_app(load_app_config(settings=settings, host=host))
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        sim = TwilioSimulator(str(server.make_url("")), speed=speed)
        await sim.__aenter__()
        running.append((sim, server))
        return sim, server, server.app[SERVER_KEY].handler.inner

    yield start
    for sim, server in running:
        await sim.__aexit__(None, None, None)
        await server.close()
    assert realtime_fake.violations == []


async def record_of(server, handler, call_sid: str) -> dict:
    live = server.app[SERVER_KEY].calls.get(call_sid)
    if live is not None:
        await live.wait_ended()
    await handler.store.flush()
    return read_call(handler.store.path, call_sid)


def turns_of(record: dict) -> list[tuple[str, str, str]]:
    return [(t["role"], t["kind"], t["text"]) for t in record["turns"]]


def heard_ms(call) -> float:
    """What the simulated phone had played when the first ``clear`` came, ms."""
    played, end = 0.0, 0.0
    for arrived, size in zip(call.frame_times, call.frame_sizes, strict=True):
        start = max(arrived, end)
        end = start + size / 8000
        if start >= call.clear_times[0]:
            break
        played += min(end, call.clear_times[0]) - start
    return played * 1000


async def test_greeting_then_a_turn_both_sides_recorded(serve, realtime_fake):
    sim, server, handler = await serve(speed=1.0)
    call = await sim.start_call()
    await call.wait_for(lambda: "reply-1" in call.echoed_marks, timeout=10)
    assert call.received_audio == tone(0.4)  # passed through untouched, paced
    first = call.frame_times[0]
    assert max((i + 1) * 0.02 - (t - first) for i, t in enumerate(call.frame_times)) <= 0.2
    session = realtime_fake.current.extra["session"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert [tool["name"] for tool in session["tools"]] == ["hangup", "send_dtmf"]
    assert "Today is" in session["instructions"] and "send_dtmf" in session["instructions"]

    speech = bytes(range(0, 160)) * 5
    await call.play(speech, speed=math.inf)
    await realtime_fake.wait_for(lambda: speech in realtime_fake.current.audio)
    await realtime_fake.caller_says("I'd like a table for two")
    await realtime_fake.respond(tone(0.2), "Sure, for what time?")
    await call.wait_for(lambda: "reply-2" in call.echoed_marks, timeout=10)
    await call.stop()
    record = await record_of(server, handler, call.call_sid)
    assert turns_of(record) == [
        ("bot", "greeting", GREETING),
        ("caller", "final", "I'd like a table for two"),
        ("bot", "reply", "Sure, for what time?"),
    ]


async def test_barge_in_clears_and_truncates_at_what_was_played(serve, realtime_fake):
    sim, server, handler = await serve(speed=1.0)
    call = await sim.start_call()
    await call.wait_for(lambda: "reply-1" in call.echoed_marks, timeout=10)
    story = realtime_fake.start_response(tone(3.0), "Once upon a time.")
    await call.wait_for(lambda: "reply-2@800" in call.echoed_marks, timeout=10)
    await realtime_fake.caller_speech_started()
    await call.wait_for_event("clear", timeout=5)
    await realtime_fake.wait_for(
        lambda: realtime_fake.current.texts("conversation.item.truncate") != []
    )
    [truncate] = realtime_fake.current.texts("conversation.item.truncate")
    spoken = await story
    assert truncate["item_id"] == spoken.item_id and truncate["content_index"] == 0
    story_heard_ms = heard_ms(call) - 400  # the 400 ms greeting played first
    assert abs(truncate["audio_end_ms"] - story_heard_ms) <= 100
    assert truncate["audio_end_ms"] <= len(call.received_audio) // 8 - 400
    await call.stop()
    record = await record_of(server, handler, call.call_sid)
    assert [k for _, k, _ in turns_of(record)].count("barge_in") == 1


async def test_hangup_after_the_goodbye_has_played(serve, realtime_fake):
    sim, server, handler = await serve(speed=1.0)
    call = await sim.start_call()
    await call.wait_for(lambda: "reply-1" in call.echoed_marks, timeout=10)
    await realtime_fake.respond(tone(0.6), "Goodbye!")
    spoken = await realtime_fake.function_call("hangup", {"reason": "goodbye"})
    assert await call.wait_closed(timeout=10) == 1000
    assert "reply-2" in call.echoed_marks  # the goodbye's last mark came back before the close
    outputs = realtime_fake.current.texts("conversation.item.create")
    assert any(o["item"].get("call_id") == spoken.call_id for o in outputs)
    record = await record_of(server, handler, call.call_sid)
    assert record["end_reason"] == "bot-hangup"
    assert ("event", "tool_call", 'hangup({"reason": "goodbye"})') in turns_of(record)


async def test_send_dtmf_is_heard_as_those_digits(serve, realtime_fake):
    sim, server, handler = await serve()
    call = await sim.start_call()
    await call.wait_for(lambda: "reply-1" in call.echoed_marks, timeout=10)
    await realtime_fake.function_call("send_dtmf", {"digits": "42#"})
    await call.wait_for(lambda: "reply-2" in call.echoed_marks, timeout=10)
    assert detect_dtmf(bytes(call.received_audio[len(tone(0.4)) :])) == "42#"
    await call.stop()
    record = await record_of(server, handler, call.call_sid)
    assert ("event", "send_dtmf", "42#") in turns_of(record)


async def test_a_dropped_vendor_socket_is_replaced_and_no_caller_audio_is_lost(
    serve, realtime_fake
):
    sim, _, _ = await serve()
    call = await sim.start_call()
    await call.wait_for(lambda: "reply-1" in call.echoed_marks, timeout=10)
    await realtime_fake.caller_says("my name is Ada")
    await realtime_fake.wait_for(lambda: len(realtime_fake.connections) == 1)
    realtime_fake.refuse_next = [503]  # the first reconnection is refused: an outage
    realtime_fake.drop()
    speech = bytes(range(60, 220)) * 10
    await call.play(speech, speed=math.inf)
    await realtime_fake.wait_for(lambda: len(realtime_fake.connections) == 2, within=15)
    second = realtime_fake.connections[1]
    await realtime_fake.wait_for(lambda: speech in second.audio, within=10)
    items = second.extra["items"]
    texts = [c.get("text") for item in items for c in item.get("content", [])]
    assert GREETING in texts and "my name is Ada" in texts
    assert second.texts("response.create") == []  # no second greeting
    await call.stop()
