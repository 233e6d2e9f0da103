"""Pacing in real time: 10 s of reply audio, each frame within 5 ms of its schedule.

The schedule is absolute: with a 100 ms lead, frames 0-5 go out at once and frame ``i`` at
``t0 + (i - 5) × 20 ms`` after that; an error that grew with ``i`` would be drift.
"""

from __future__ import annotations

import statistics

import pytest

from voicehost.server import CallHandler, ReplyStatus

SECONDS = 10.0
LEAD_FRAMES = 5


class TenSeconds(CallHandler):
    def __init__(self) -> None:
        self.reply = None
        self.call = None

    async def on_call_start(self, call):
        self.call = call
        call.playback.frame_times = []  # record server-side send times
        self.reply = call.say("ten seconds")


def _errors(times: list[float]) -> list[float]:
    t0 = times[0]
    return [t - (t0 + max(0, i - LEAD_FRAMES) * 0.02) for i, t in enumerate(times)]


@pytest.mark.slow
async def test_ten_seconds_of_frames_follow_the_schedule_without_drift(make_server):
    handler = TenSeconds()
    h = await make_server(handler=handler, tts_config={"seconds": SECONDS})
    async with h.simulator() as sim:
        call = await sim.start_call()
        await call.wait_for_audio(int(SECONDS * 8000), timeout=30)
        assert await handler.reply == ReplyStatus.PLAYED
        await call.stop()
    sent = handler.call.playback.frame_times
    assert len(sent) == SECONDS * 50
    errors = sorted(_errors(sent))
    ordered = _errors(sent)
    assert errors[0] >= -0.0005  # never early
    # Frames are sent within 5 ms of their slot. On a loaded 2-core CI box the process is
    # sometimes not scheduled for tens of ms; a late frame does not move the ones after it
    # (absolute schedule), so the bound is asserted for the frames as a whole (90 %; on an
    # idle machine all of them are) rather than for every one.
    assert statistics.median(errors) <= 0.002
    assert errors[int(len(errors) * 0.90)] <= 0.005, errors[-10:]
    # never so late that Twilio ran dry (the 100 ms lead absorbs a stall)
    assert errors[-1] < 0.100
    # no drift: the last second is as close to the schedule as the first
    assert statistics.median(ordered[-50:]) - statistics.median(ordered[6:56]) <= 0.002
    # what Twilio receives follows the same schedule (loopback adds little)
    received = _errors(call.frame_times)
    assert len(received) == len(sent)
    assert statistics.median(received) <= 0.005
    assert statistics.median(received[-50:]) - statistics.median(received[6:56]) <= 0.003
