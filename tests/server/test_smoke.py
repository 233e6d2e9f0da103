"""End-to-end smoke test: a simulated call through webhook, stream, STT and playback."""

from __future__ import annotations

from voicehost.testing.handlers import RecordingHandler
from voicehost.testing.providers import FakeTTSConfig, tone


async def test_call_end_to_end(make_server):
    handler = RecordingHandler(greeting="Hello there")
    h = await make_server(handler=handler)
    expected = h.plugin.tts.audio_for("Hello there", FakeTTSConfig(ms_per_char=20))
    async with h.simulator(speed=4.0) as sim:
        call = await sim.start_call()
        session = await h.plugin.stt.wait_for_session()
        await call.play(tone(0.2))
        await session.wait_for_bytes(1600)
        audio = await call.wait_for_audio(len(expected))
        await call.wait_for(lambda: "reply-1" in call.echoed_marks)
        await call.stop()
        await handler.wait_for("end")
    assert audio[: len(expected)] == expected
    assert handler.names()[0] == "start"
    assert handler.names()[-1] == "end"
