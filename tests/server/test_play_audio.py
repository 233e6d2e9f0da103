"""``Playback.play_audio``: raw μ-law replies (DTMF tones) in the same queue as speech, with
no TTS provider, paced 20 ms frames, a mark, and the same barge-in / close outcomes."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from voicehost.dtmf import detect_dtmf, dtmf_ulaw
from voicehost.server.outbound import OutboundChannel
from voicehost.server.playback import Playback, PlaybackError, PlaybackQueueFull, ReplyStatus
from voicehost.testing.providers import FakeSpeechProvider, FakeTTSConfig

SID = "MZ" + "0" * 32


class VirtualClock:
    """Monotonic seconds that only move when the playback sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += delay
        await asyncio.sleep(0)


class Sink:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def send(self, text: str) -> None:
        self.messages.append(json.loads(text))

    def events(self) -> list[str]:
        return [m["event"] for m in self.messages]

    def payloads(self) -> list[bytes]:
        return [
            base64.b64decode(m["media"]["payload"]) for m in self.messages if m["event"] == "media"
        ]

    def marks(self) -> list[str]:
        return [m["mark"]["name"] for m in self.messages if m["event"] == "mark"]


def make(*, tts: bool = False, config=None, clock=None, lead_ms=10_000, **kwargs):
    sink = Sink()
    channel = OutboundChannel(sink.send, lambda: 0, 1 << 30, lambda _n: None)
    channel.start()
    provider = FakeSpeechProvider() if tts else None
    cfg = FakeTTSConfig.model_validate(config or {}) if tts else None
    if clock is not None:
        kwargs |= {"clock": clock, "sleep": clock.sleep}
    playback = Playback(channel, SID, provider, cfg, lead_ms=lead_ms, **kwargs)
    playback.frame_times = []
    return playback, sink, channel


async def settle(playback: Playback, channel: OutboundChannel, marks: int) -> None:
    """Wait until ``marks`` marks await their echo and the channel has written everything."""

    async def done() -> None:
        while len(playback._awaiting_mark) < marks or channel.buffered_bytes:  # noqa: ASYNC110
            await asyncio.sleep(0)

    await asyncio.wait_for(done(), 5)


async def test_plays_raw_audio_without_tts_in_frames_then_a_mark():
    playback, sink, channel = make()
    audio = bytes(range(256)) * 2  # 512 bytes: 3 frames and 32 bytes
    reply = playback.play_audio(audio, label="dtmf 1")
    assert reply.text is None and reply.source == audio and reply.label == "dtmf 1"
    assert "dtmf 1" in repr(reply)
    await settle(playback, channel, 1)
    frames = sink.payloads()
    assert [len(f) for f in frames] == [160] * 4
    assert b"".join(frames) == audio + b"\xff" * 128  # last frame padded with μ-law silence
    assert sink.events() == ["media"] * 4 + ["mark"]
    assert sink.marks() == [reply.mark_name]
    assert reply.frames_sent == 4 and not reply.done()
    assert playback.on_mark(reply.mark_name)
    assert await reply == ReplyStatus.PLAYED and reply.mark_echoed
    await playback.close()


async def test_dtmf_tones_arrive_intact():
    playback, sink, channel = make()
    reply = playback.play_audio(dtmf_ulaw("12#w9"))
    await settle(playback, channel, 1)
    assert detect_dtmf(b"".join(sink.payloads())) == "12#9"
    assert b"".join(sink.payloads()) == dtmf_ulaw("12#w9")  # already whole frames
    playback.on_mark(reply.mark_name)
    assert await reply == ReplyStatus.PLAYED
    await playback.close()


async def test_bytes_like_input_is_copied_and_anything_else_refused():
    playback, sink, channel = make()
    buffer = bytearray(b"\x01" * 160)
    reply = playback.play_audio(memoryview(buffer))
    buffer[:] = b"\x02" * 160  # changing the caller's buffer afterwards changes nothing
    await settle(playback, channel, 1)
    assert sink.payloads() == [b"\x01" * 160]
    assert reply.source == b"\x01" * 160
    for bad in ("tones", [1, 2], None, 160):
        with pytest.raises(ValueError, match="μ-law bytes"):
            playback.play_audio(bad)  # type: ignore[arg-type]
    await playback.close()


async def test_fifo_with_spoken_replies():
    playback, sink, channel = make(tts=True, config={"ms_per_char": 10})
    first = playback.say("hello")
    tones = playback.play_audio(b"\x11" * 320, label="dtmf")
    last = playback.say("bye")
    await settle(playback, channel, 3)
    assert sink.marks() == [first.mark_name, tones.mark_name, last.mark_name]

    def padded(text: str) -> bytes:
        audio = playback.provider.audio_for(text, playback.config)
        return audio + b"\xff" * (-len(audio) % 160)

    assert b"".join(sink.payloads()) == padded("hello") + b"\x11" * 320 + padded("bye")
    events = sink.events()
    marks_at = [i for i, e in enumerate(events) if e == "mark"]
    assert marks_at[1] - marks_at[0] == 3  # two frames of tones, then its mark
    for reply in (first, tones, last):
        playback.on_mark(reply.mark_name)
    assert [await r for r in (first, tones, last)] == [ReplyStatus.PLAYED] * 3
    await playback.close()


async def test_counts_toward_max_queued():
    playback, _, _ = make(tts=True, config={"seconds": 5.0}, max_queued=3)
    queued = [playback.say("one"), playback.play_audio(b"\xff" * 16000), playback.say("two")]
    with pytest.raises(PlaybackQueueFull, match="max_queued_replies = 3"):
        playback.play_audio(b"\xff" * 160)
    with pytest.raises(PlaybackQueueFull):
        playback.say("three")
    assert playback.pending == 3
    await playback.close()
    assert [r.status for r in queued] == [ReplyStatus.CANCELLED] * 3


async def test_paced_in_real_time_like_speech():
    clock = VirtualClock()
    playback, _, _ = make(clock=clock, lead_ms=100)
    reply = playback.play_audio(b"\xff" * 160 * 100)  # 2 s
    await asyncio.wait_for(_until(lambda: reply.frames_sent == 100), 5)
    times = playback.frame_times
    t0 = times[0]
    assert times[:6] == [t0] * 6  # the 100 ms lead at once ...
    for i in range(6, 100):  # ... then one frame each 20 ms on the absolute schedule
        assert times[i] == pytest.approx(t0 + (i - 5) * 0.02, abs=1e-9)
    await playback.close()


async def test_barge_in_cancels_playing_and_queued_audio():
    playback, sink, channel = make(lead_ms=20)
    playing = playback.play_audio(b"\x11" * 160 * 500)  # 10 s
    queued = playback.play_audio(b"\x22" * 160)
    await asyncio.wait_for(_until(lambda: playing.frames_sent >= 2), 5)
    assert playback.speaking
    assert playback.barge_in()
    assert playing.status is ReplyStatus.CANCELLED
    assert queued.status is ReplyStatus.CANCELLED
    assert await playing == ReplyStatus.CANCELLED
    await asyncio.wait_for(_until(lambda: not channel.buffered_bytes), 5)
    assert sink.events()[-1] == "clear"
    assert "mark" not in sink.events()
    assert b"\x22" * 160 not in sink.payloads()
    assert playing.frames_sent < 500
    after = playback.play_audio(b"\x33" * 160)  # and the queue goes on
    await settle(playback, channel, 1)
    playback.on_mark(after.mark_name)
    assert await after == ReplyStatus.PLAYED
    await playback.close()


async def test_close_cancels_and_refuses_afterwards():
    playback, _, channel = make()
    awaiting = playback.play_audio(b"\xff" * 160)
    await settle(playback, channel, 1)
    queued = playback.play_audio(b"\xff" * 160)
    await playback.close()
    assert await awaiting == ReplyStatus.CANCELLED
    assert await queued == ReplyStatus.CANCELLED
    with pytest.raises(PlaybackError, match="ended"):
        playback.play_audio(b"\xff" * 160)


async def test_empty_audio_plays_nothing_and_sends_no_mark():
    playback, sink, channel = make()
    reply = playback.play_audio(b"")
    assert await asyncio.wait_for(reply.wait(), 5) == ReplyStatus.PLAYED
    assert reply.frames_sent == 0 and channel.buffered_bytes == 0
    assert sink.messages == []
    await playback.close()


async def test_unechoed_mark_times_out_played():
    playback, _, _ = make(mark_timeout_ms=30)
    reply = playback.play_audio(b"\xff" * 160)
    assert await asyncio.wait_for(reply.wait(), 5) == ReplyStatus.PLAYED
    assert not reply.mark_echoed
    await playback.close()


async def _until(predicate) -> None:
    while not predicate():  # noqa: ASYNC110
        await asyncio.sleep(0)
