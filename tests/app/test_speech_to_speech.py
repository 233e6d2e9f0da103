"""Speech-to-speech mode through the real server and the Twilio simulator, on the scripted
fake conversation provider (:mod:`voicehost.testing.conversation`): config, the greeting's
audio, caller audio passed through, barge-in with truncate at the audio played, tools
(hang-up after the goodbye's marks, DTMF decoded back, a registered tool), records of both
sides, reconnection without losing caller audio, giving up, and the session limit.
The OpenAI Realtime plugin against its wire fake: tests/conversation/."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
from aiohttp.test_utils import TestServer

from voicehost import (
    CallerSpeechStarted,
    CallerSpeechStopped,
    CallerTranscript,
    ResponseDone,
    SessionExpiring,
    Tool,
    ToolCall,
    hookimpl,
)
from voicehost.app.assembly import build_serve_app, load_app_config
from voicehost.config import Settings
from voicehost.dtmf import detect_dtmf
from voicehost.errors import ConfigError
from voicehost.plugins import PluginHost
from voicehost.records import read_call
from voicehost.server import SERVER_KEY
from voicehost.speech_to_speech import SpeechToSpeechCallHandler, compose_instructions
from voicehost.testing import TwilioSimulator
from voicehost.testing.conversation import FakeConversationConfig
from voicehost.testing.providers import FakeProvidersPlugin, tone


class LookupPlugin:
    """Registers one tool, ``lookup_order``."""

    @hookimpl
    def register_tools(self, register):
        async def lookup(call, arguments):
            return {"order": arguments["order_id"], "status": "shipped", "call": call.call_sid}

        register(
            Tool(
                name="lookup_order",
                description="Look up an order.",
                parameters={"type": "object", "properties": {"order_id": {"type": "string"}}},
                handler=lookup,
            )
        )


def make_host() -> tuple[PluginHost, FakeProvidersPlugin]:
    host = PluginHost()
    host.load_builtins()
    fakes = FakeProvidersPlugin()
    host.register(fakes, name="voicehost-fakes")
    host.register(LookupPlugin(), name="voicehost-lookup")
    return host, fakes


def settings_for(tmp_path, **fake) -> Settings:
    table = {"greeting": "Hello!", "tools": ["hangup", "send_dtmf", "lookup_order"], **fake}
    return Settings.from_dict(
        {
            "conversation": {"provider": "fake", "fake": table},
            "records": {"path": str(tmp_path / "calls.db")},
        },
        environ={},
    )


@pytest.fixture
async def rig(tmp_path):
    """``start(speed=…, **fake_config)`` → (fakes, simulator, server, handler)."""
    running: list = []

    async def start(speed: float = math.inf, **fake):
        host, fakes = make_host()
        app = build_serve_app(load_app_config(settings=settings_for(tmp_path, **fake), host=host))
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        sim = TwilioSimulator(str(server.make_url("")), speed=speed)
        await sim.__aenter__()
        running.append((sim, server))
        handler = server.app[SERVER_KEY].handler.inner
        assert isinstance(handler, SpeechToSpeechCallHandler)
        return fakes, sim, server, handler

    yield start
    for sim, server in running:
        await sim.__aexit__(None, None, None)
        await server.close()


async def record_of(server, handler, call_sid: str) -> dict:
    live = server.app[SERVER_KEY].calls.get(call_sid)
    if live is not None:
        await live.wait_ended()
    await handler.store.flush()
    return read_call(handler.store.path, call_sid)


def turns_of(record: dict) -> list[tuple[str, str, str]]:
    return [(t["role"], t["kind"], t["text"]) for t in record["turns"]]


# --- config ----------------------------------------------------------------------------


def test_a_conversation_provider_replaces_stt_tts_and_responder(tmp_path):
    host, fakes = make_host()
    config = load_app_config(settings=settings_for(tmp_path), host=host)
    runtime = config.runtime
    assert (runtime.stt, runtime.tts, runtime.responder) == (None, None, None)
    assert runtime.conversation is not None and runtime.conversation.id == "fake"
    assert runtime.conversation.provider is fakes.conversation
    assert isinstance(runtime.conversation.config, FakeConversationConfig)
    assert runtime.conversation.config.greeting == "Hello!"


@pytest.mark.parametrize(
    ("fake", "message"),
    [
        ({"tools": ["hangup", "nope"]}, "no tool 'nope'"),
        ({"tools": ["transfer"]}, "transfer needs transfer_targets"),
        ({"transfer_targets": [{"name": "sales", "number": "5550003333"}]}, "E.164"),
        ({"max_session_s": 5}, "max_session_s"),
    ],
)
def test_config_check_refuses_a_bad_conversation_table(tmp_path, fake, message):
    host, _ = make_host()
    with pytest.raises(ConfigError, match=message) as caught:
        load_app_config(settings=settings_for(tmp_path, **fake), host=host)
    assert "conversation.fake" in str(caught.value)


def test_a_conversation_provider_must_take_a_conversation_config(tmp_path):
    from voicehost import ConversationProvider, ProviderConfig

    class Odd(ConversationProvider):
        id = "odd"
        config_class = ProviderConfig

        def create_session(self, request):  # pragma: no cover - never reached
            raise AssertionError

    class OddPlugin:
        @hookimpl
        def register_conversation_providers(self, register):
            register(Odd())

    host, _ = make_host()
    host.register(OddPlugin(), name="voicehost-odd")
    settings = Settings.from_dict({"conversation": {"provider": "odd"}}, environ={})
    with pytest.raises(ConfigError, match=r"must subclass voicehost\.ConversationConfig"):
        load_app_config(settings=settings, host=host)


def test_instructions_carry_the_date_and_phone_menu_guidance_only_with_send_dtmf():
    import datetime

    config = FakeConversationConfig(instructions="Book a table.")
    day = datetime.date(2026, 11, 30)
    with_keys = compose_instructions(config, ["hangup", "send_dtmf"], day)
    assert with_keys.startswith("Today is Monday, November 30, 2026.")
    assert "send_dtmf" in with_keys and with_keys.endswith("Book a table.")
    assert "send_dtmf" not in compose_instructions(config, ["hangup"], day)


# --- calls -----------------------------------------------------------------------------


async def test_the_greeting_plays_paced_and_caller_audio_reaches_the_model_untouched(rig):
    fakes, sim, server, handler = await rig(speed=1.0, greeting_audio_ms=400)
    call = await sim.start_call()
    session = await fakes.conversation.wait_for_session()
    assert session.request.greet and session.request.tools[0].name == "hangup"
    assert [t.name for t in session.request.tools] == ["hangup", "send_dtmf", "lookup_order"]
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-1", timeout=10)
    assert call.received_audio == tone(0.4)
    # paced: 20 frames of 20 ms, never more than the lead ahead of real time
    first = call.frame_times[0]
    ahead = [(i + 1) * 0.02 - (t - first) for i, t in enumerate(call.frame_times)]
    assert len(call.frame_times) == 20 and max(ahead) <= 0.2
    speech = bytes(range(256)) * 5
    await call.play(speech[:1280], speed=math.inf)
    got = await session.wait_for_audio(1280)
    assert got[-1280:] == speech[:1280]
    await call.stop()
    record = await record_of(server, handler, call.call_sid)
    assert turns_of(record)[0] == ("bot", "greeting", "Hello!")


async def test_both_sides_are_recorded_in_order_with_tool_calls(rig):
    fakes, sim, server, handler = await rig()
    call = await sim.start_call()
    session = await fakes.conversation.wait_for_session()
    await greeted(handler, call)
    session.emit(CallerSpeechStarted(), CallerSpeechStopped())
    session.speak(tone(0.2), "Let me check.", done=False, item_id="it_2")
    session.emit(ToolCall("c1", "lookup_order", '{"order_id": "42"}'))
    session.emit(CallerTranscript("where is my order"))  # transcribed after the reply began
    result = await _tool_result(session, "c1")
    assert result.respond is True
    assert json.loads(result.output) == {
        "order": "42",
        "status": "shipped",
        "call": call.call_sid,
    }
    await call.stop()
    record = await record_of(server, handler, call.call_sid)
    assert turns_of(record) == [
        ("bot", "greeting", "Hello!"),
        ("caller", "final", "where is my order"),
        ("bot", "reply", "Let me check."),
        ("event", "tool_call", 'lookup_order({"order_id": "42"})'),
        ("event", "tool_result", result.output),
    ]
    assert record["end_reason"] == "caller-hangup"


async def until(predicate, timeout_s: float = 10.0):
    """Wait (bounded) until ``predicate()`` is truthy; returns its value."""
    async with asyncio.timeout(timeout_s):
        while not (value := predicate()):  # noqa: ASYNC110 - polled state, no event
            await asyncio.sleep(0.01)
    return value


async def _tool_result(session, call_id: str):
    return await until(
        lambda: next((sent for sent in session.tool_results if sent.call_id == call_id), None)
    )


async def greeted(handler, call) -> None:
    """The greeting has played and the server has seen its mark."""
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-1")
    await until(lambda: not handler.calls[call.call_sid].speaking)


async def test_barge_in_clears_and_truncates_at_the_audio_played(rig):
    fakes, sim, server, handler = await rig(speed=1.0, greeting="")
    call = await sim.start_call()
    session = await fakes.conversation.wait_for_session()
    item = session.speak(tone(3.0), "A long story.", done=False)
    await call.wait_for(lambda: "reply-1@600" in call.echoed_marks, timeout=10)
    session.emit(CallerSpeechStarted())
    await call.wait_for_event("clear", timeout=5)
    sent_ms = len(call.received_audio) // 8
    await until(lambda: session.truncates)
    [(cut_item, audio_end_ms)] = session.truncates
    assert cut_item == item
    # what the simulated phone had played when the clear came, ms
    played_s, end = 0.0, 0.0
    clear_at = call.clear_times[0]
    for arrived, size in zip(call.frame_times, call.frame_sizes, strict=True):
        start = max(arrived, end)
        end = start + size / 8000
        if start >= clear_at:
            break
        played_s += min(end, clear_at) - start
    assert 600 <= played_s * 1000 <= sent_ms
    # right to within one progress mark (100 ms), never past what was sent
    assert abs(audio_end_ms - played_s * 1000) <= 100
    assert audio_end_ms <= sent_ms
    # late audio of the cut item is dropped
    session.speak(tone(0.5), item_id=item)
    session.speak(tone(0.1), "Yes?", item_id="next")
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-2")
    assert len(call.received_audio) == sent_ms * 8 + len(tone(0.1))
    await call.stop()
    record = await record_of(server, handler, call.call_sid)
    kinds = [(role, kind) for role, kind, _ in turns_of(record)]
    assert ("event", "barge_in") in kinds and ("bot", "reply") in kinds


async def test_hangup_waits_for_the_goodbye_marks(rig):
    fakes, sim, server, handler = await rig(speed=1.0, greeting="")
    call = await sim.start_call()
    session = await fakes.conversation.wait_for_session()
    session.speak(tone(0.6), "Goodbye!", done=False, item_id="bye")
    session.emit(ToolCall("c9", "hangup", '{"reason": "goodbye"}'))
    result = await _tool_result(session, "c9")
    assert result.respond is False and json.loads(result.output)["success"] is True
    session.emit(ResponseDone("resp_bye"))
    code = await call.wait_closed(timeout=10)
    assert code == 1000
    assert "reply-1" in call.echoed_marks  # the goodbye's final mark came back first
    assert call.received_audio == tone(0.6)
    record = await record_of(server, handler, call.call_sid)
    assert record["end_reason"] == "bot-hangup"
    assert ("bot", "reply", "Goodbye!") in turns_of(record)


async def test_send_dtmf_plays_digits_decoded_back(rig):
    fakes, sim, server, handler = await rig(greeting="")
    call = await sim.start_call()
    session = await fakes.conversation.wait_for_session()
    session.emit(ToolCall("k1", "send_dtmf", '{"digits": "123#"}'))
    result = await _tool_result(session, "k1")
    assert result.respond is False
    await call.wait_for_event("mark", timeout=10)
    assert detect_dtmf(bytes(call.received_audio)) == "123#"
    await call.stop()
    record = await record_of(server, handler, call.call_sid)
    assert ("event", "send_dtmf", "123#") in turns_of(record)


async def test_a_bad_tool_call_gets_an_error_result_and_the_call_goes_on(rig):
    fakes, sim, _, _ = await rig(greeting="")
    call = await sim.start_call()
    session = await fakes.conversation.wait_for_session()
    session.emit(ToolCall("b1", "transfer", '{"to": "x"}'))  # not offered
    session.emit(ToolCall("b2", "hangup", "[1, 2]"))  # arguments not an object
    first, second = await _tool_result(session, "b1"), await _tool_result(session, "b2")
    assert "error" in json.loads(first.output) and first.respond
    assert "error" in json.loads(second.output) and second.respond
    assert call.close_code is None
    await call.stop()


async def test_a_dropped_session_is_replaced_without_losing_caller_audio(rig):
    fakes, sim, _, handler = await rig()
    call = await sim.start_call()
    first = await fakes.conversation.wait_for_session()
    await greeted(handler, call)
    first.emit(CallerSpeechStopped(), CallerTranscript("hi there"))
    fakes.conversation.refuse_connects = True  # the first reconnection fails (outage)
    first.drop()
    await until(lambda: fakes.conversation.connects >= 2)
    speech = bytes(range(90, 250)) * 10  # 10 frames while the vendor is away
    await call.play(speech, speed=math.inf)
    fakes.conversation.refuse_connects = False
    second = await fakes.conversation.wait_for_session(1)
    got = await second.wait_for_audio(len(speech))
    assert speech in got
    assert second.request.greet is False
    history = [(t.role, t.text) for t in second.request.context.history]
    assert history == [("bot", "Hello!"), ("caller", "hi there")]
    await call.stop()
    assert handler.calls == {} and fakes.conversation.connects == 3


async def test_when_the_vendor_cannot_be_reached_again_the_call_ends_with_error(rig):
    fakes, sim, server, handler = await rig(reconnect_attempts=1)
    call = await sim.start_call()
    first = await fakes.conversation.wait_for_session()
    fakes.conversation.refuse_connects = True
    first.drop()
    code = await call.wait_closed(timeout=15)
    assert code == 1000
    record = await record_of(server, handler, call.call_sid)
    assert record["end_reason"] == "error"


async def test_a_refused_key_ends_the_call_with_error(rig):
    fakes, sim, server, handler = await rig(refuse_key=True)
    call = await sim.start_call()
    assert await call.wait_closed(timeout=10) == 1000
    record = await record_of(server, handler, call.call_sid)
    assert record["end_reason"] == "error" and fakes.conversation.connects == 1


async def test_the_session_limit_ends_the_call_after_what_plays(rig):
    fakes, sim, server, handler = await rig(greeting="")
    call = await sim.start_call()
    session = await fakes.conversation.wait_for_session()
    session.speak(tone(0.2), "We have to stop here. Goodbye.", done=False)
    session.emit(SessionExpiring())
    session.emit(ResponseDone())
    assert await call.wait_closed(timeout=10) == 1000
    assert call.received_audio == tone(0.2)
    record = await record_of(server, handler, call.call_sid)
    assert record["end_reason"] == "max-duration"
