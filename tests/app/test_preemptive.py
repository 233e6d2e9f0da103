"""Preemptive generation end to end: the real server and Twilio simulator, fake STT/TTS
through the real plugin host, the scripted responder and call records.

A provisional transcript (the STT's early final) makes the conversation ask the responder and
synthesise its first sentence before the turn is final. When the final confirms it, that audio
plays without a second TTS request; when the caller goes on, nothing of it reaches the call,
the history or the records, and its TTS stream is closed.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from voicehost.app.assembly import build_serve_app, load_app_config
from voicehost.config import Settings
from voicehost.contracts import CallContext, ReplyItem, Responder
from voicehost.conversation import ResponderCallHandler
from voicehost.plugins import PluginHost
from voicehost.records import read_call
from voicehost.server import SERVER_KEY
from voicehost.testing import TwilioSimulator
from voicehost.testing.providers import FakeProvidersPlugin, FakeTTSConfig

SCRIPT = {
    "greeting": "Hello there.",
    "fallback": "Pardon?",
    "rules": [
        {"match": r"\bhours\b", "reply": "Nine to five."},
        {"match": r"\bbye\b", "reply": "Goodbye.", "hangup": True},
    ],
}
TTS = {"ms_per_char": 10}


async def _start(tmp_path, *, preemptive: bool = True, handler=None):
    host = PluginHost()
    host.load_builtins()
    fakes = FakeProvidersPlugin()
    host.register(fakes, name="voicehost-fakes")
    db = tmp_path / "calls.db"
    settings = Settings.from_dict(
        {
            "stt": {"provider": "fake"},
            "tts": {"provider": "fake", "fake": TTS},
            "responder": {"provider": "scripted", "scripted": SCRIPT},
            "records": {"path": str(db)},
            "server": {"preemptive_generation": preemptive},
        }
    )
    config = load_app_config(settings=settings, host=host)
    app = (
        build_serve_app(config)
        if handler is None
        else build_serve_app(config, handler_factory=lambda _config: handler)
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return fakes, server, db


@pytest.fixture
async def rig(tmp_path):
    fakes, server, db = await _start(tmp_path)
    async with TwilioSimulator(str(server.make_url("")), speed=math.inf) as sim:
        yield fakes, sim, db, server
    await server.close()


async def _until(condition, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 - polled state, no event
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


async def _greeted(fakes, sim, server):
    """A call whose greeting has played to its end (and settled in the conversation)."""
    call = await sim.start_call()
    stt = await fakes.stt.wait_for_session()
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-1")
    live = server.app[SERVER_KEY].calls[call.call_sid]
    await _until(lambda: not live.state["voicehost.conversation"].speeches)
    return call, stt


async def _record(server, call, db) -> dict:
    live = server.app[SERVER_KEY].calls.get(call.call_sid)
    if live is not None:
        await live.wait_ended()
    handler = server.app[SERVER_KEY].handler.inner
    for _ in range(500):
        await handler.store.flush()
        record = read_call(db, call.call_sid)
        if any(event["event"] == "ended" for event in record["events"]):
            return record
        await asyncio.sleep(0.01)
    raise AssertionError("the call's end was never recorded")


def _texts(record: dict, role: str) -> list[str]:
    return [turn["text"] for turn in record["turns"] if turn["role"] == role]


async def test_a_confirmed_provisional_transcript_plays_the_audio_prepared_before_the_final(rig):
    fakes, sim, db, server = rig
    call, stt = await _greeted(fakes, sim, server)
    before = len(fakes.tts.syntheses)
    audio_before = len(call.received_audio)

    stt.speech_start()
    stt.speech_end(0.2)
    stt.provisional("what are your hours")
    await _until(lambda: any(s.completed for s in fakes.tts.syntheses[before:]))
    held = fakes.tts.syntheses[before]
    assert held.text == "Nine to five."
    await asyncio.sleep(0.1)
    assert len(call.received_audio) == audio_before  # prepared, not said

    stt.final("what are your hours")
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-2")
    # The held synthesis was played: no second TTS request for the sentence.
    assert [s.text for s in fakes.tts.syntheses[before:]] == ["Nine to five."]
    expected = fakes.tts.audio_for("Nine to five.", FakeTTSConfig(**TTS))
    assert len(call.received_audio) - audio_before >= len(expected)

    await call.stop()
    record = await _record(server, call, db)
    assert _texts(record, "caller") == ["what are your hours"]
    assert _texts(record, "bot") == ["Hello there.", "Nine to five."]
    final = next(t for t in record["turns"] if t["kind"] == "final")
    timings = final["timings"]
    # the text was ready before the final: counted as there at the final, never before it
    assert timings["first_token_ms"] == timings["final_ms"]
    assert timings["first_audio_ms"] >= timings["final_ms"]


async def test_when_the_caller_goes_on_the_prepared_reply_never_reaches_the_call_or_records(rig):
    fakes, sim, db, server = rig
    call, stt = await _greeted(fakes, sim, server)
    before = len(fakes.tts.syntheses)
    audio_before = len(call.received_audio)

    stt.speech_start()
    stt.speech_end(0.2)
    stt.provisional("what are your")  # the scripted fallback: "Pardon?"
    await _until(lambda: len(fakes.tts.syntheses) > before)
    dropped = fakes.tts.syntheses[before]
    assert dropped.text == "Pardon?"

    stt.speech_start()  # the caller goes on: the provisional turn is withdrawn
    await _until(lambda: dropped.closed_at is not None)
    stt.speech_end(0.2)
    stt.final("what are your opening hours")
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-2")
    await asyncio.sleep(0.1)

    config = FakeTTSConfig(**TTS)
    said = len(fakes.tts.audio_for("Nine to five.", config))
    sent = len(call.received_audio) - audio_before
    assert said <= sent < said + 160  # "Nine to five." (one padded frame at most), no "Pardon?"
    assert [e["mark"]["name"] for e in call.events_of("mark")] == ["reply-1", "reply-2"]

    await call.stop()
    record = await _record(server, call, db)
    assert _texts(record, "caller") == ["what are your opening hours"]
    assert _texts(record, "bot") == ["Hello there.", "Nine to five."]
    assert "Pardon?" not in str(record)


async def test_a_final_with_other_words_drops_the_prepared_reply_and_answers_the_final(rig):
    fakes, sim, db, server = rig
    call, stt = await _greeted(fakes, sim, server)
    before = len(fakes.tts.syntheses)

    stt.speech_start()
    stt.speech_end(0.2)
    stt.provisional("what are your ours")  # misheard early; the final decode differs
    await _until(lambda: len(fakes.tts.syntheses) > before)
    stt.final("what are your hours")
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-2")

    assert [s.text for s in fakes.tts.syntheses[before:]] == ["Pardon?", "Nine to five."]
    assert fakes.tts.syntheses[before].closed_at is not None
    await call.stop()
    record = await _record(server, call, db)
    assert _texts(record, "bot") == ["Hello there.", "Nine to five."]


class _Counting(Responder):
    """Says "Noted." to everything; counts how often it was asked."""

    def __init__(self, preemptive: bool) -> None:
        self.asked: list[str] = []
        self._preemptive = preemptive

    @property
    def preemptive(self) -> bool:
        return self._preemptive

    async def reply(self, call: CallContext, transcript: str) -> AsyncIterator[ReplyItem]:
        self.asked.append(transcript)
        yield "Noted."


@pytest.mark.parametrize(("allows", "setting", "asked_early"), [
    (True, True, True),
    (False, True, False),  # the responder acts on the world: asked only on the final
    (True, False, False),  # [server] preemptive_generation = false
])  # fmt: skip
async def test_the_responder_is_asked_early_only_when_it_and_the_server_allow_it(
    tmp_path, allows, setting, asked_early
):
    responder = _Counting(preemptive=allows)
    fakes, server, _db = await _start(
        tmp_path, preemptive=setting, handler=ResponderCallHandler(responder)
    )
    try:
        async with TwilioSimulator(str(server.make_url("")), speed=math.inf) as sim:
            call = await sim.start_call()
            stt = await fakes.stt.wait_for_session()
            stt.speech_start()
            stt.provisional("one two")
            await asyncio.sleep(0.1)
            assert responder.asked == (["one two"] if asked_early else [])
            stt.final("one two")
            await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-1")
            assert responder.asked == ["one two"]  # adopted, or asked on the final: once
            await call.stop()
    finally:
        await server.close()


async def test_a_turn_between_the_provisional_transcript_and_the_final_means_asking_again(rig):
    """The reply was prepared on a history that has since grown (a key press): the final is
    answered afresh, on the history as it is now."""
    fakes, sim, _db, server = rig
    call, stt = await _greeted(fakes, sim, server)
    before = len(fakes.tts.syntheses)
    stt.speech_start()
    stt.provisional("what are your hours")
    await _until(lambda: len(fakes.tts.syntheses) > before)
    await call.dtmf("5")
    live = server.app[SERVER_KEY].calls[call.call_sid]
    conv = live.state["voicehost.conversation"]
    await _until(lambda: any(turn.kind == "dtmf" for turn in conv.context.history))
    stt.final("what are your hours")
    await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-2")
    assert [s.text for s in fakes.tts.syntheses[before:]] == ["Nine to five.", "Nine to five."]
    assert fakes.tts.syntheses[before].closed_at is not None  # the first one was dropped
    await call.stop()
