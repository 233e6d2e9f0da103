"""End to end: the real call server and the Twilio simulator, with each cloud STT plugin loaded
from its entry point, chosen by ``[stt] provider`` alone, and pointed at its vendor fake."""

from __future__ import annotations

from typing import Any

import pytest
from fakes.stt_audio import silence

from voicehost.testing.handlers import RecordingHandler

SPEED = 10.0  # caller audio at 10× real time


@pytest.fixture(params=["openai", "deepgram"])
def vendor(request: pytest.FixtureRequest) -> tuple[str, Any]:
    """(vendor name, its running fake)."""
    return request.param, request.getfixturevalue(f"{request.param}_fake")


def finals(handler: RecordingHandler) -> list[str]:
    return [event[2] for event in handler.events if event[0] == "final"]


async def test_partials_and_finals_reach_the_call_handler(vendor, call_server, clips):
    name, fake = vendor
    handler = RecordingHandler()
    h = await call_server(name, fake, handler=handler)
    audio = silence(200) + clips.spoken("hello") + clips.spoken("time")
    async with h.simulator(speed=SPEED) as sim:
        call = await sim.start_call()
        await handler.wait_for("start")
        await call.play(audio)
        await handler.wait_for("final", count=2)
        await call.stop()
        await handler.wait_for("end")

    assert finals(handler) == [clips.text("hello"), clips.text("time")]
    names = handler.names()
    assert names.index("speech_start") < names.index("partial") < names.index("final")
    partials = [e[2] for e in handler.events if e[0] == "partial"]
    assert all(clips.text("hello").startswith(p) for p in partials[:2])
    # Twilio's μ-law went to the vendor untouched, every byte, in order
    assert fake.audio == audio
    assert len(fake.connections) == 1 and fake.current.violations == []
    assert fake.current.close_code == 1000


async def test_speech_start_barges_in_on_the_bot(vendor, call_server, clips):
    name, fake = vendor
    handler = RecordingHandler(greeting="Welcome! " * 30)  # ~5 s of TTS audio
    h = await call_server(name, fake, handler=handler)
    async with h.simulator(speed=1.0) as sim:
        call = await sim.start_call()
        await call.wait_for_audio(seconds=0.3)  # the greeting is playing
        assert call.events_of("clear") == []
        await call.play(clips.spoken("hello"), speed=SPEED)
        await handler.wait_for("speech_start")
        await call.wait_for_event("clear")
        await handler.wait_for("final")
        await call.stop()
        await handler.wait_for("end")
    assert finals(handler) == [clips.text("hello")]
    (reply,) = handler.replies
    assert reply.status.value in ("interrupted", "cancelled")


async def test_reconnects_mid_call_without_losing_words(vendor, call_server, clips, eventually):
    name, fake = vendor
    handler = RecordingHandler()
    h = await call_server(name, fake, handler=handler, stt={"reconnect_base_delay_s": 0.5})
    async with h.simulator(speed=SPEED) as sim:
        call = await sim.start_call()
        await call.play(clips.spoken("hello"))
        await handler.wait_for("final")
        await fake.wait_for(lambda: len(fake.audio) == len(clips.spoken("hello")))
        session = h.call(call.call_sid).stt
        fake.drop()
        await eventually(lambda: session.state == "reconnecting")
        await call.play(clips.spoken("time"))  # 1 s, buffered while reconnecting
        await fake.wait_for(lambda: len(fake.connections) == 2)
        await call.play(clips.spoken("thanks"))
        await handler.wait_for("final", count=3)
        await call.stop()
        await handler.wait_for("end")
    assert finals(handler) == [clips.text(n) for n in ("hello", "time", "thanks")]
    assert len(fake.connections) == 2
    assert fake.audio == clips.spoken("hello") + clips.spoken("time") + clips.spoken("thanks")
    assert session.dropped_bytes == 0


async def test_call_goes_on_without_stt_when_reconnecting_fails(
    vendor, call_server, clips, eventually
):
    name, fake = vendor
    handler = RecordingHandler()
    h = await call_server(name, fake, handler=handler, stt={"reconnect_attempts": 2})
    async with h.simulator(speed=SPEED) as sim:
        call = await sim.start_call()
        await handler.wait_for("start")
        session = h.call(call.call_sid).stt
        await eventually(lambda: session.connected)
        fake.refuse_all = 503
        fake.drop()
        await eventually(lambda: session.state == "failed")
        await call.play(clips.spoken("hello"))  # no STT any more; nothing breaks
        reply = h.call(call.call_sid).say("Sorry, I cannot hear you, but I can still talk.")
        await reply
        expected = h.tts.audio_for("Sorry, I cannot hear you, but I can still talk.", h.tts_config)
        audio = await call.wait_for_audio(len(expected))
        await call.stop()
        await handler.wait_for("end")
    assert audio[: len(expected)] == expected
    assert fake.refusals == [503, 503]
    assert finals(handler) == []


async def test_bad_key_at_call_start_keeps_the_call_up(vendor, call_server, clips):
    name, fake = vendor
    handler = RecordingHandler(greeting="Hello")
    h = await call_server(name, fake, handler=handler, stt={"api_key": "wrong-key"})
    async with h.simulator(speed=SPEED) as sim:
        call = await sim.start_call()
        expected = h.tts.audio_for("Hello", h.tts_config)
        await call.wait_for_audio(len(expected))
        await call.play(clips.spoken("hello"))
        await call.stop()
        await handler.wait_for("end")
    assert fake.refusals == [401]  # reported at once, never retried
    assert len(fake.upgrades) == 1
    assert finals(handler) == []


async def test_hang_up_closes_the_vendor_stream_cleanly(vendor, call_server, clips):
    name, fake = vendor
    handler = RecordingHandler()
    h = await call_server(name, fake, handler=handler)
    async with h.simulator(speed=SPEED) as sim:
        call = await sim.start_call()
        await call.play(clips["thanks"])  # the caller is still talking when the call ends
        await fake.wait_for(lambda: fake.connections and len(fake.audio) == len(clips["thanks"]))
        await call.stop()
        await handler.wait_for("end")
    conn = fake.current
    assert conn.close_code == 1000
    if name == "deepgram":
        assert [m["type"] for m in conn.texts()] == ["Finalize", "CloseStream"]
        # Finalize flushed the open utterance (the server no longer dispatches to the app
        # once the call is ending; the plugin-level test sees it reach on_transcript)
        assert [text for _, text in fake.finals_sent] == [clips.text("thanks")]
