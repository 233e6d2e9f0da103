"""The Media Streams socket: every Twilio message, malformed input, and the call lifecycle."""

from __future__ import annotations

import asyncio
import logging

from voicehost.audio import AudioConverter
from voicehost.contracts import MULAW_8K, PCM16_16K
from voicehost.server import CallHandler
from voicehost.testing.handlers import RecordingHandler
from voicehost.testing.providers import FakeTTSConfig, tone


async def test_start_creates_the_call_with_webhook_data_and_custom_parameters(make_server):
    handler = RecordingHandler()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call(from_="+15551230000", to="+15559870000")
        await handler.wait_for("start")
        live = handler.calls[0]
        assert live.call_sid == call.call_sid
        assert live.stream_sid == call.stream_sid
        assert live.account_sid == sim.account_sid
        assert (live.from_, live.to, live.direction) == ("+15551230000", "+15559870000", "inbound")
        assert "token" not in live.custom_parameters
        session = await h.plugin.stt.wait_for_session()
        assert session.request.call_sid == call.call_sid
        assert session.request.stream_sid == call.stream_sid
        assert session.request.input_format == MULAW_8K
        assert session.config.fail_connect is False  # the provider's config blob
        health = await (await sim.session.get(h.base_url + "/healthz")).json()
        assert health["active_calls"] == 1
        await call.stop()


async def test_media_is_passed_through_untouched_for_a_mulaw_provider(harness):
    audio = tone(0.5)
    async with harness.simulator(speed=10) as sim:
        call = await sim.start_call()
        session = await harness.plugin.stt.wait_for_session()
        await call.play(audio)
        received = await session.wait_for_bytes(len(audio))
        await call.stop()
    assert received == audio
    assert all(len(chunk) == 160 for chunk in session.audio)


async def test_media_is_converted_for_a_pcm16_16k_provider_keeping_state(make_server):
    h = await make_server(stt="fake-pcm16")
    audio = tone(1.0, freq=300)
    reference = AudioConverter(MULAW_8K, PCM16_16K)
    expected = b"".join(reference.convert(audio[i : i + 160]) for i in range(0, len(audio), 160))
    async with h.simulator(speed=20) as sim:
        call = await sim.start_call()
        session = await h.plugin.stt_pcm16.wait_for_session()
        assert session.request.input_format == PCM16_16K
        await call.play(audio)
        received = await session.wait_for_bytes(len(expected))
        await call.stop()
    # one stateful converter across frames: exactly the streaming conversion, no clicks
    assert received == expected
    assert len(expected) > 0.9 * 2 * 2 * len(audio)  # twice the samples, two bytes each


async def test_dtmf_reaches_the_handler(make_server):
    handler = RecordingHandler()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        for digit in "5#":
            await call.dtmf(digit)
        await handler.wait_for("dtmf", 2)
        await call.stop()
    assert [e[2] for e in handler.events if e[0] == "dtmf"] == ["5", "#"]


async def test_stt_callbacks_reach_the_handler(make_server):
    handler = RecordingHandler()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        session = await h.plugin.stt.wait_for_session()
        session.speech_start()
        session.partial("hel")
        session.final("hello")
        await handler.wait_for("final")
        await call.stop()
    names = handler.names()
    assert names.index("speech_start") < names.index("partial") < names.index("final")
    assert ("final", call.call_sid, "hello") in handler.events


async def test_mark_echo_finishes_the_reply(make_server):
    handler = RecordingHandler(greeting="hi")
    h = await make_server(handler=handler, mark_timeout_ms=60_000)
    async with h.simulator(speed=5) as sim:
        call = await sim.start_call()
        await handler.wait_for("start")
        reply = handler.replies[0]
        mark = await call.wait_for_event("mark")
        assert mark["mark"]["name"] == reply.mark_name
        assert str(await asyncio.wait_for(reply.wait(), 5)) == "ReplyStatus.PLAYED"
        assert reply.mark_echoed
        await call.stop()


async def test_stop_ends_stt_queue_and_call_exactly_once(make_server):
    handler = RecordingHandler(greeting="a long greeting " * 20)
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        session = await h.plugin.stt.wait_for_session()
        await call.wait_for_audio(800)
        await call.stop()
        assert call.close_code == 1000
        await handler.wait_for("end")
        live = handler.calls[0]
        await live.wait_ended()
        assert live.end_reason == "caller-hangup"
        assert session.close_calls == 1
        assert handler.names().count("end") == 1
        assert str(handler.replies[0].status) == "ReplyStatus.CANCELLED"
        assert h.plugin.tts.syntheses[0].closed_at is not None
        assert not h.server.calls
        assert h.server.ended_calls == 1
        # a late second end changes nothing
        await live.end("closed")
        assert handler.names().count("end") == 1
        assert session.close_calls == 1


async def test_socket_close_without_stop_ends_the_call(make_server):
    handler = RecordingHandler()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        session = await h.plugin.stt.wait_for_session()
        await call.close()
        end = await handler.wait_for("end")
    assert end[2] == "error"
    assert session.close_calls == 1
    assert handler.names().count("end") == 1


async def test_hangup_from_the_handler_closes_the_stream(make_server):
    class HangUpOnDigit(RecordingHandler):
        async def on_dtmf(self, call, digit):
            await super().on_dtmf(call, digit)
            await call.hangup()

    handler = HangUpOnDigit()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        await call.dtmf("9")
        assert await call.wait_closed() == 1000
        end = await handler.wait_for("end")
    assert end[2] == "bot-hangup"


async def test_handler_exceptions_are_isolated(make_server, caplog):
    class Broken(CallHandler):
        def __init__(self):
            self.digits = []
            self.got_two = asyncio.Event()

        async def on_call_start(self, call):
            raise RuntimeError("boom at start")

        async def on_dtmf(self, call, digit):
            self.digits.append(digit)
            if digit == "2":
                self.got_two.set()
            if digit == "1":
                raise ValueError("boom at dtmf")

    handler = Broken()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        await call.dtmf("1")
        await call.dtmf("2")
        await asyncio.wait_for(handler.got_two.wait(), 10)
        assert handler.digits == ["1", "2"]
        assert not call.ws.closed
        await call.stop()
    assert "boom at start" in caplog.text and "boom at dtmf" in caplog.text


async def test_stt_connect_failure_keeps_the_call_up_and_playback_works(make_server, caplog):
    caplog.set_level(logging.WARNING)
    handler = RecordingHandler(greeting="still talking")
    h = await make_server(handler=handler, stt_config={"fail_connect": True})
    expected = h.plugin.tts.audio_for("still talking", FakeTTSConfig(ms_per_char=20))
    async with h.simulator(speed=5) as sim:
        call = await sim.start_call()
        session = await h.plugin.stt.wait_for_session()
        await call.play(tone(0.1))
        audio = await call.wait_for_audio(len(expected))
        await call.wait_for(lambda: handler.replies[0].mark_name in call.echoed_marks)
        await call.dtmf("3")
        await handler.wait_for("dtmf")
        assert not call.ws.closed
        live = handler.calls[0]
        assert live.stt_connected is False
        await call.stop()
    assert audio[: len(expected)] == expected
    assert "STT connection failed" in caplog.text
    assert session.audio == []  # no audio fed to a session whose connect failed
    assert session.close_calls == 1


async def test_media_before_start_is_ignored(harness):
    async with harness.simulator() as sim:
        call = await sim.start_call(send_start=False)
        await call.send_media(b"\x00" * 160)
        await call.send_start()
        session = await harness.plugin.stt.wait_for_session()
        await call.send_media(b"\x01" * 160)
        received = await session.wait_for_bytes(160)
        await call.stop()
    assert received == b"\x01" * 160


async def test_malformed_input_is_counted_logged_once_and_not_fatal(make_server, caplog):
    caplog.set_level(logging.WARNING)
    handler = RecordingHandler()
    h = await make_server(handler=handler)
    garbage = "{not json \x1b[31m\x00" + "A" * 500
    async with h.simulator() as sim:
        call = await sim.start_call()
        session = await h.plugin.stt.wait_for_session()
        await handler.wait_for("start")
        for _ in range(3):
            await call.send_raw(garbage)
        await call.send_raw('{"event": "media", "streamSid": "x", "media": {"payload": "%%%"}}')
        await call.send_raw('{"event": "media", "media": {"payload": "AAA"}}')  # bad padding
        await call.send_raw('{"event": "teleport", "x": 1}')
        await call.send_raw("[1, 2]")
        await call.send_raw(b"\x00\x01")
        await call.send_raw('{"event": "dtmf", "dtmf": "5"}')
        await call.send_media(b"\x02" * 160)
        assert await session.wait_for_bytes(160) == b"\x02" * 160
        live = handler.calls[0]
        assert dict(live.malformed) == {
            "json": 4,
            "base64": 2,
            "unknown_event": 1,
            "binary": 1,
            "field": 1,
        }
        await call.stop()
    lines = [r.getMessage() for r in caplog.records if "malformed message (json" in r.getMessage()]
    assert len(lines) == 1  # once per kind
    excerpt = lines[0].rsplit("): ", 1)[1]
    assert excerpt.endswith("...") and len(excerpt) <= 123
    assert "\x1b" not in lines[0] and "\x00" not in lines[0]


async def test_stt_callbacks_from_a_worker_thread_are_handed_to_the_loop(make_server):
    handler = RecordingHandler()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        session = await h.plugin.stt.wait_for_session()
        await asyncio.to_thread(session.final, "from a thread")
        final = await handler.wait_for("final")
        await call.stop()
    assert final[2] == "from a thread"


async def test_final_flushed_while_stt_closes_still_reaches_the_handler(make_server):
    """A vendor that flushes the caller's last words on close (Deepgram Finalize, OpenAI
    commit) must not lose them: the handler gets that final before on_call_end."""
    handler = RecordingHandler()
    h = await make_server(handler=handler, stt_config={"final_on_close": "one last thing"})
    async with h.simulator() as sim:
        call = await sim.start_call()
        await h.plugin.stt.wait_for_session()
        await call.stop()
        await handler.wait_for("end")
    names = handler.names()
    finals = [e for e in handler.events if e[0] == "final"]
    assert [e[2] for e in finals] == ["one last thing"]
    assert names.index("final") < names.index("end")
