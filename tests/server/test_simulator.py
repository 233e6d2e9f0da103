"""The Twilio simulator models Twilio's playback: marks echo when their audio has played,
and at once on ``clear``."""

from __future__ import annotations

import time

import pytest

from voicehost.server import ReplyStatus
from voicehost.testing.handlers import RecordingHandler
from voicehost.testing.twilio import TwilioSimulator, parse_stream_twiml


async def test_mark_is_echoed_when_the_audio_before_it_has_played(make_server):
    handler = RecordingHandler(greeting="x" * 25)  # 0.5 s of audio
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        await handler.wait_for("start")
        assert await handler.replies[0] == ReplyStatus.PLAYED
        mark = call.events_of("mark")[0]
        echoed_at = time.monotonic()  # the reply resolved on the echo
        first_frame = call.frame_times[0]
        # the echo came about 0.5 s after the first frame, not when the mark arrived
        assert len(call.received_audio) == 4000
        assert call.played_until - first_frame == pytest.approx(0.5, abs=0.03)
        assert mark["_t"] < call.played_until
        assert echoed_at >= call.played_until - 0.005
        assert handler.replies[0].mark_echoed
        await call.stop()


async def test_clear_echoes_pending_marks_at_once(make_server):
    handler = RecordingHandler(greeting="x" * 100)  # 2 s of audio
    h = await make_server(handler=handler, playback_lead_ms=5000)  # all sent up front
    async with h.simulator() as sim:
        call = await sim.start_call()
        await handler.wait_for("start")
        await call.wait_for_event("mark")
        assert call.echoed_marks == []
        handler.calls[0].clear()
        await call.wait_for_event("clear")
        assert call.echoed_marks == [handler.replies[0].mark_name]
        assert call.clear_times[0] < call.frame_times[0] + 1.0
        assert await handler.replies[0] == ReplyStatus.CANCELLED
        await call.stop()


async def test_simulator_speed_scales_playback_time(make_server):
    handler = RecordingHandler(greeting="x" * 50)  # 1 s of audio
    h = await make_server(handler=handler, playback_lead_ms=5000)
    async with h.simulator(speed=10) as sim:
        call = await sim.start_call()
        await call.wait_for(lambda: bool(call.echoed_marks))
        assert call.played_until - call.frame_times[0] == pytest.approx(0.1, abs=0.03)
        await call.stop()


def test_parse_stream_twiml_and_bad_speed():
    url, params = parse_stream_twiml(
        '<Response><Connect><Stream url="wss://a/b"><Parameter name="token" value="t"/>'
        "</Stream></Connect></Response>"
    )
    assert (url, params) == ("wss://a/b", {"token": "t"})
    with pytest.raises(AssertionError, match="no <Connect><Stream"):
        parse_stream_twiml("<Response><Say>hi</Say></Response>")
    with pytest.raises(ValueError, match="speed"):
        TwilioSimulator("http://127.0.0.1:1", speed=0)


def test_local_stream_url_maps_the_public_host_to_the_server():
    sim = TwilioSimulator("http://127.0.0.1:8080", public_url="https://bot.example/prefix")
    assert sim.local_stream_url("wss://bot.example/prefix/voice/stream") == (
        "ws://127.0.0.1:8080/voice/stream"
    )
