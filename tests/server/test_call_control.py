"""Call actions through the simulator: in-band DTMF out (decoded with a Goertzel detector),
transfer (``<Dial>`` over REST), hang-up without a stream, and the call-safety limits
(max duration, idle stream, heartbeat)."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET

import aiohttp
import pytest

from voicehost.dtmf import detect_dtmf
from voicehost.server.call_control import CallControlError
from voicehost.testing.handlers import RecordingHandler
from voicehost.testing.twilio import parse_stream_twiml, random_sid

ALL_KEYS = "0123456789*#ABCD"


class PressKeys(RecordingHandler):
    """Presses ``digits`` when the call starts."""

    def __init__(self, digits: str) -> None:
        super().__init__()
        self.digits = digits
        self.status: object = None

    async def on_call_start(self, call):
        await super().on_call_start(call)
        self.status = await call.send_dtmf(self.digits)
        self._add("pressed", call.call_sid, self.status)


async def test_send_dtmf_is_heard_as_exactly_those_digits(make_server, rest_fake):
    handler = PressKeys(ALL_KEYS)
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        await handler.wait_for("pressed", timeout=15)
        assert str(handler.status) == "ReplyStatus.PLAYED"
        # 16 tones of 100 ms with 60 ms gaps: 2.56 s of μ-law, every frame 160 bytes
        assert len(call.received_audio) == 16 * 160 * 8 and not call.protocol_errors
        assert detect_dtmf(bytes(call.received_audio)) == ALL_KEYS
        await call.stop()


async def test_send_dtmf_pauses_and_refuses_what_is_not_a_key(make_server, rest_fake):
    handler = PressKeys("1w2")
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        await handler.wait_for("pressed", timeout=15)
        assert detect_dtmf(bytes(call.received_audio)) == "12"
        live = handler.calls[0]
        for bad in ("", "12x", "1" * 65, "½"):
            with pytest.raises(ValueError):
                live.send_dtmf(bad)
        await call.stop()


class TransferOnKey(RecordingHandler):
    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.error: Exception | None = None

    async def on_dtmf(self, call, digit):
        await super().on_dtmf(call, digit)
        try:
            await call.transfer(self.target)
        except CallControlError as exc:
            self.error = exc
            self._add("transfer_error", call.call_sid, str(exc))


async def test_transfer_says_the_line_then_dials_over_rest(make_server, rest_fake):
    rest = rest_fake()
    handler = TransferOnKey("+15550003333")
    h = await make_server(
        handler=handler, rest=rest, transfer_message="Connecting you to a person."
    )
    async with h.simulator() as sim:
        call = await sim.start_call()
        rest.audio_at_update = lambda: len(call.received_audio)
        await call.dtmf("0")
        end = await handler.wait_for("end")
        assert end[2] == "transferred"
        assert await call.wait_closed() == 1000
    (sid, status, twiml, audio_then) = rest.updates[0]
    assert sid == call.call_sid and status is None
    dial = ET.fromstring(twiml).find("./Dial/Number")
    assert dial is not None and dial.text == "+15550003333"
    # the line was spoken (fake TTS: 20 ms per character) before the REST update
    assert audio_then >= len("Connecting you to a person.") * 160
    assert handler.lifecycle(call.call_sid)[-1] == ("ended", "transferred")


async def test_transfer_to_a_sip_uri_uses_dial_sip(make_server, rest_fake):
    rest = rest_fake()
    handler = TransferOnKey("sip:desk@pbx.example.com")
    h = await make_server(handler=handler, rest=rest, transfer_message="")
    async with h.simulator() as sim:
        call = await sim.start_call()
        await call.dtmf("0")
        await handler.wait_for("end")
    assert ET.fromstring(rest.updates[0][2]).find("./Dial/Sip").text == "sip:desk@pbx.example.com"


@pytest.mark.parametrize(
    ("target", "rest", "message"),
    [
        ("555-0003", True, "E.164"),
        ("+15550003333", False, "REST API is not configured"),
    ],
)
async def test_transfer_refused_leaves_the_call_up(make_server, rest_fake, target, rest, message):
    handler = TransferOnKey(target)
    h = await make_server(handler=handler, rest=rest_fake() if rest else None)
    async with h.simulator() as sim:
        call = await sim.start_call()
        await call.dtmf("0")
        error = await handler.wait_for("transfer_error")
        assert message in error[2]
        assert h.server.calls  # still live
        await call.stop()
        assert (await handler.wait_for("end"))[2] == "caller-hangup"


async def test_transfer_that_twilio_refuses_raises_and_the_call_goes_on(make_server, rest_fake):
    rest = rest_fake(fail=True)
    handler = TransferOnKey("+15550003333")
    h = await make_server(handler=handler, rest=rest, transfer_message="")
    async with h.simulator() as sim:
        call = await sim.start_call()
        await call.dtmf("0")
        error = await handler.wait_for("transfer_error")
        assert "21220" in error[2]
        assert h.server.calls
        await call.stop()


async def test_rest_hangup_of_a_ringing_call(make_server, rest_fake):
    rest = rest_fake()
    h = await make_server(rest=rest)
    await h.server.hangup_call("CA" + "1" * 32)
    assert rest.hangups == ["CA" + "1" * 32]


async def test_rest_hangup_without_credentials_is_a_clear_error(make_server, rest_fake):
    h = await make_server()
    with pytest.raises(CallControlError, match="account_sid and auth_token"):
        await h.server.hangup_call("CA" + "1" * 32)


async def test_a_call_is_ended_at_max_call_duration(make_server, rest_fake):
    handler = RecordingHandler()
    h = await make_server(
        handler=handler, max_call_duration_s=0.5, max_duration_message="Time is up."
    )
    async with h.simulator() as sim:
        call = await sim.start_call()
        assert await call.wait_closed(timeout=10) == 1000
        end = await handler.wait_for("end")
    assert end[2] == "max-duration"
    # the goodbye was played first: the fake TTS makes 20 ms per character
    assert len(call.received_audio) >= len("Time is up.") * 160
    assert handler.lifecycle(call.call_sid)[-1] == ("ended", "max-duration")


async def test_a_silent_stream_is_ended_as_idle(make_server, rest_fake):
    handler = RecordingHandler()
    h = await make_server(handler=handler, stream_idle_timeout_s=0.3)
    async with h.simulator() as sim:
        call = await sim.start_call()
        assert await call.wait_closed(timeout=10) == 1000
        end = await handler.wait_for("end")
    assert end[2] == "idle"


async def test_a_peer_that_never_answers_pings_is_closed(make_server, rest_fake):
    """A half-open socket: nothing arrives and no pong comes back; the heartbeat notices
    long before the idle timeout."""
    handler = RecordingHandler()
    h = await make_server(handler=handler, websocket_heartbeat_s=0.2, stream_idle_timeout_s=60)
    async with h.simulator() as sim:
        call_sid = random_sid("CA")
        reply = await sim.post_form("/voice/webhook", sim.webhook_params(call_sid))
        url, params = parse_stream_twiml(reply.text)
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(sim.local_stream_url(url), autoping=False)
            stream_sid = random_sid("MZ")
            start = {
                "event": "start",
                "sequenceNumber": "1",
                "streamSid": stream_sid,
                "start": {
                    "streamSid": stream_sid,
                    "callSid": call_sid,
                    "accountSid": sim.account_sid,
                    "tracks": ["inbound"],
                    "customParameters": params,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            }
            await ws.send_str(json.dumps(start))
            end = await handler.wait_for("end", timeout=10)  # never reading: no pong
            await ws.close()
    assert end[2] == "error"


async def test_lifecycle_events_of_a_streamed_inbound_call(make_server, rest_fake):
    handler = RecordingHandler()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        await handler.wait_for("start")
        await call.stop()
        await handler.wait_for("end")
        await sim.post_status(call.call_sid, "completed")  # after the stop: no second end
        await asyncio.sleep(0.05)
    assert handler.lifecycle(call.call_sid) == [
        ("ringing", ""),
        ("answered", ""),
        ("ended", "caller-hangup"),
    ]
    event = handler.call_events[0]
    assert (event.direction, event.from_, event.to) == ("inbound", "+15005550006", "+15005550001")


class ApologiseOnStart(RecordingHandler):
    async def on_call_start(self, call):
        await super().on_call_start(call)
        await call.end_with_message("Sorry, something broke.", "error")


async def test_end_with_message_says_it_over_rest_then_ends_the_call(make_server, rest_fake):
    rest = rest_fake()
    handler = ApologiseOnStart()
    h = await make_server(handler=handler, rest=rest)
    async with h.simulator() as sim:
        call = await sim.start_call()
        end = await handler.wait_for("end")
        assert end[2] == "error"
        assert await call.wait_closed() == 1000
    (sid, _status, twiml, _audio) = rest.updates[0]
    root = ET.fromstring(twiml)
    assert sid == call.call_sid
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root.find("Say").text == "Sorry, something broke."


async def test_end_with_message_without_rest_just_hangs_up(make_server):
    handler = ApologiseOnStart()
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        end = await handler.wait_for("end")
        assert end[2] == "error"
        assert await call.wait_closed() == 1000
