"""Barge-in end to end: the caller speaks over the bot."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from voicehost.server import ReplyStatus
from voicehost.testing.handlers import RecordingHandler
from voicehost.testing.providers import tone
from voicehost.wavfile import read_audio_ulaw

HUMAN = Path(__file__).resolve().parents[1] / "data" / "human"

LONG = "This reply goes on and on. " * 20  # about 11 s of fake TTS audio


async def _until(predicate) -> None:
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - state of another task, no event to await
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), 10)


async def test_speech_start_clears_and_cancels_synthesis_within_one_frame(make_server):
    handler = RecordingHandler(greeting=LONG)
    h = await make_server(handler=handler, tts_config={"chunk_delay_s": 0.002})
    closed: list[float] = []
    h.plugin.tts.on_close = lambda record: closed.append(time.monotonic())
    async with h.simulator() as sim:
        call = await sim.start_call()
        session = await h.plugin.stt.wait_for_session()
        await handler.wait_for("start")
        queued = handler.calls[0].say("and this was queued")
        await call.wait_for_audio(seconds=0.3)
        synthesis = h.plugin.tts.syntheses[0]
        assert synthesis.closed_at is None  # the vendor stream is still open

        t0 = time.monotonic()
        session.speech_start()
        await call.wait_for_event("clear")
        await _until(lambda: bool(closed))

        assert call.clear_times[0] - t0 <= 0.020
        assert closed[0] - t0 <= 0.020
        assert synthesis.completed is False
        assert synthesis.close_kind in ("GeneratorExit", "CancelledError")
        assert await handler.replies[0] == ReplyStatus.CANCELLED  # not an error
        assert await queued == ReplyStatus.CANCELLED
        # the queued reply was synthesised ahead (prefetch); none of it was sent
        assert [s.text for s in h.plugin.tts.syntheses] == [synthesis.text, "and this was queued"]
        assert queued.frames_sent == 0
        await handler.wait_for("speech_start")
        # nothing of the cancelled reply follows the clear
        n_events = len(call.events)
        await call.dtmf("1")
        await handler.wait_for("dtmf")
        after_clear = call.events[[e["event"] for e in call.events].index("clear") + 1 :]
        assert [e["event"] for e in after_clear] == []
        assert len(call.events) == n_events
        # and the bot can speak again
        again = handler.calls[0].say("ok")
        await call.wait_for(lambda: again.mark_name in call.echoed_marks)
        assert await again == ReplyStatus.PLAYED
        await call.stop()


async def test_played_audio_is_at_most_the_lead_ahead_when_clear_arrives(make_server):
    handler = RecordingHandler(greeting=LONG)
    h = await make_server(handler=handler)
    async with h.simulator() as sim:
        call = await sim.start_call()
        session = await h.plugin.stt.wait_for_session()
        await call.wait_for_audio(seconds=0.5)
        session.speech_start()
        await call.wait_for_event("clear")
        # Audio sent but not yet played when the clear came: at most the 100 ms lead plus
        # the frame in flight (and a few ms of scheduling).
        sent_s = len(call.received_audio) / 8000
        elapsed_s = call.clear_times[0] - call.frame_times[0]
        assert sent_s - elapsed_s <= 0.100 + 0.020 + 0.010
        await call.stop()


async def test_caller_audio_barges_in_through_the_stt_session(make_server):
    """The scripted fake STT fires speech start at the first non-silent caller frame."""
    handler = RecordingHandler(greeting=LONG)
    h = await make_server(
        handler=handler, stt_config={"final_after_frames": 10, "final_text": "stop please"}
    )
    async with h.simulator() as sim:
        call = await sim.start_call()
        await call.wait_for_audio(seconds=0.3)
        await call.play(b"\xff" * 800 + tone(0.3))
        await call.wait_for_event("clear")
        final = await handler.wait_for("final")
        assert final[2] == "stop please"
        assert await handler.replies[0] == ReplyStatus.CANCELLED
        await call.stop()


async def test_barge_in_off_keeps_talking(make_server):
    handler = RecordingHandler(greeting="short reply here")
    h = await make_server(handler=handler, barge_in=False)
    async with h.simulator(speed=4) as sim:
        call = await sim.start_call()
        session = await h.plugin.stt.wait_for_session()
        await call.wait_for_audio(seconds=0.05)
        session.speech_start()
        await handler.wait_for("speech_start")
        assert await handler.replies[0] == ReplyStatus.PLAYED
        assert call.events_of("clear") == []
        await call.stop()


async def test_a_back_channel_pauses_the_bot_which_then_goes_on(make_server):
    """With barge_in_min_speech_ms, caller speech over the bot sends ``clear`` at once; when
    it is over before that time (an "mm-hm"), the bot goes on where it stopped and its reply
    plays to the end; the app is not told of a barge-in."""
    handler = RecordingHandler(greeting="Hello there, this is a reply of a few words.")
    h = await make_server(handler=handler, barge_in_min_speech_ms=300)
    async with h.simulator() as sim:
        call = await sim.start_call()
        session = await h.plugin.stt.wait_for_session()
        await handler.wait_for("start")
        await call.wait_for_audio(seconds=0.2)
        await call.play(tone(0.1), speed=1.0)  # a short "mm-hm"
        session.speech_start()
        await call.wait_for_event("clear")
        reply = handler.replies[0]
        assert reply.status is ReplyStatus.PENDING  # paused, not cancelled
        await call.play(b"\xff" * 160 * 20, speed=1.0)  # then silence
        session.final("Mm-hmm.")  # its transcript is not a turn: not answered
        assert await asyncio.wait_for(reply.wait(), 15) is ReplyStatus.PLAYED
        assert "speech_start" not in handler.names() and "final" not in handler.names()
        session.final("What are your hours?")  # the next one is
        await handler.wait_for("final")
        # every frame of the reply reached the phone (some twice: the lead re-sent)
        assert len(call.received_audio) >= reply.frames_sent * 160
        await call.stop()


async def test_a_real_interruption_is_cut_off_after_a_pause(make_server):
    handler = RecordingHandler(greeting=LONG)
    h = await make_server(handler=handler, barge_in_min_speech_ms=300)
    async with h.simulator() as sim:
        call = await sim.start_call()
        session = await h.plugin.stt.wait_for_session()
        await handler.wait_for("start")
        await call.wait_for_audio(seconds=0.2)
        talking = asyncio.create_task(call.play(tone(1.5), speed=1.0))  # the caller goes on
        await asyncio.sleep(0.1)
        session.speech_start()
        await call.wait_for_event("clear")
        await handler.wait_for("speech_start", timeout=5)
        assert await handler.replies[0] == ReplyStatus.CANCELLED
        await talking
        await call.stop()


@pytest.mark.parametrize(
    ("clip", "seconds", "cut_off"),
    [
        ("forig.wav", None, True),  # "Don't throw trash on the street.": an interruption
        ("morig.wav", 0.25, False),  # its first word alone ("That"), then silence
    ],
)
async def test_the_back_channel_gate_on_real_speech(make_server, clip, seconds, cut_off):
    """Real recorded speech (tests/data/human) at real time over the bot: a sentence cuts
    it off, a single short word does not."""
    ulaw = read_audio_ulaw(HUMAN / clip)
    if seconds is not None:
        ulaw = ulaw[: int(seconds * 8000)]
    handler = RecordingHandler(greeting="This reply goes on for a while, and on. " * 3)
    h = await make_server(handler=handler, barge_in_min_speech_ms=400)
    async with h.simulator() as sim:
        call = await sim.start_call()
        session = await h.plugin.stt.wait_for_session()
        await handler.wait_for("start")
        await call.wait_for_audio(seconds=0.3)
        speaking = asyncio.create_task(call.play(ulaw + b"\xff" * 8000, speed=1.0))
        await asyncio.sleep(0.1)  # a VAD reports speech about 100 ms after its onset
        session.speech_start()
        await call.wait_for_event("clear")
        reply = handler.replies[0]
        if cut_off:
            await handler.wait_for("speech_start", timeout=5)
            assert await reply == ReplyStatus.CANCELLED
        else:
            assert await asyncio.wait_for(reply.wait(), 20) is ReplyStatus.PLAYED
            assert "speech_start" not in handler.names()
        await speaking
        await call.stop()
