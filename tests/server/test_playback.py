"""Playback unit tests: the reply queue, pacing on an absolute clock, marks, barge-in.

A virtual clock stands in for ``time.monotonic``: each sleep wakes up late by a random
jitter, as an event loop under load does, so drift would show at once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random

import pytest

from voicehost.contracts import PCM16_24K
from voicehost.errors import ProviderError
from voicehost.server.outbound import OutboundChannel
from voicehost.server.playback import (
    Playback,
    PlaybackError,
    PlaybackQueueFull,
    ReplyStatus,
)
from voicehost.testing.providers import FakeSpeechProvider, FakeTTSConfig, tone

SID = "MZ" + "0" * 32


class VirtualClock:
    """Monotonic seconds; ``sleep(d)`` advances by ``d`` plus up to ``jitter`` late."""

    def __init__(self, jitter: float = 0.0, seed: int = 1) -> None:
        self.now = 1000.0
        self.jitter = jitter
        self.rng = random.Random(seed)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += delay + self.rng.uniform(0, self.jitter)
        await asyncio.sleep(0)


class Sink:
    """Collects what the channel writes."""

    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def send(self, text: str) -> None:
        self.messages.append(json.loads(text))

    def events(self) -> list[str]:
        return [m["event"] for m in self.messages]

    def audio(self) -> bytes:
        return b"".join(
            base64.b64decode(m["media"]["payload"]) for m in self.messages if m["event"] == "media"
        )


def make_playback(config=None, *, clock=None, lead_ms=100, mark_timeout_ms=2000, max_queued=8):
    sink = Sink()
    channel = OutboundChannel(sink.send, lambda: 0, 1 << 30, lambda _n: None)
    channel.start()
    provider = FakeSpeechProvider()
    cfg = FakeTTSConfig.model_validate(config or {})
    kwargs = {}
    if clock is not None:
        kwargs = {"clock": clock, "sleep": clock.sleep}
    playback = Playback(
        channel,
        SID,
        provider,
        cfg,
        lead_ms=lead_ms,
        mark_timeout_ms=mark_timeout_ms,
        max_queued=max_queued,
        **kwargs,
    )
    playback.frame_times = []
    return playback, provider, sink, channel


async def drain(channel: OutboundChannel) -> None:
    """Let the writer task flush the channel."""
    for _ in range(50):
        await asyncio.sleep(0)
        if not channel.buffered_bytes:
            return


async def test_no_drift_over_a_60_s_reply_with_late_wakeups():
    clock = VirtualClock(jitter=0.015)  # every sleep up to 15 ms late
    playback, _, sink, channel = make_playback({"seconds": 60.0}, clock=clock)
    reply = playback.say("a minute of audio")
    await _until(lambda: reply.frames_sent >= 3000 and playback._active is None)
    times = playback.frame_times
    assert len(times) == 3000
    t0 = times[0]
    lead_frames = 5  # 100 ms of 20 ms frames go out at once
    errors = [t - (t0 + max(0, i - lead_frames) * 0.02) for i, t in enumerate(times)]
    assert min(errors) >= 0
    assert max(errors) <= 0.015 + 1e-9  # one wake-up's lateness, never accumulated
    # The last minute's frames are no later than the first ones: no drift.
    assert max(errors[-500:]) <= 0.015 + 1e-9
    await drain(channel)
    assert len(sink.audio()) == 60 * 8000
    await playback.close()


async def test_never_more_than_the_lead_queued_at_twilio():
    clock = VirtualClock(jitter=0.005)
    playback, _, _, _ = make_playback({"seconds": 2.0}, clock=clock, lead_ms=60)
    reply = playback.say("x")
    await _until(lambda: reply.frames_sent >= 100 and playback._active is None)
    t0 = playback.frame_times[0]
    for i, t in enumerate(playback.frame_times):
        sent_audio_end = t0 + (i + 1) * 0.02  # when Twilio finishes this frame
        assert sent_audio_end - t <= 0.06 + 0.02 + 1e-9
    await playback.close()


async def test_underrun_reanchors_instead_of_bursting():
    """A TTS slower than real time: Twilio ran dry, so the next frame is sent at once
    and the schedule restarts from there (no burst of 'catch-up' frames)."""
    clock = VirtualClock()

    class SlowStart(FakeSpeechProvider):
        async def _stream(self, text, config, record):
            yield tone(0.2)
            clock.now += 1.0  # the vendor stalls for a second
            yield tone(0.2)

    sink = Sink()
    channel = OutboundChannel(sink.send, lambda: 0, 1 << 30, lambda _n: None)
    channel.start()
    playback = Playback(channel, SID, SlowStart(), FakeTTSConfig(), clock=clock, sleep=clock.sleep)
    playback.frame_times = []
    reply = playback.say("x")
    await _until(lambda: reply.frames_sent >= 20 and playback._active is None)
    t = playback.frame_times
    gap_at = 10  # first frame after the stall
    assert t[gap_at] - t[gap_at - 1] >= 1.0
    # after the stall: that frame and the 100 ms lead at once, then one per 20 ms again
    assert t[gap_at + 5] == t[gap_at]
    for i in range(gap_at + 6, 20):
        assert t[i] - t[i - 1] == pytest.approx(0.02, abs=1e-6)
    await playback.close()


async def test_reply_plays_in_order_with_a_mark_and_resolves_on_echo():
    playback, provider, sink, channel = make_playback({"ms_per_char": 10}, lead_ms=10_000)
    first = playback.say("one two")
    second = playback.say("three")
    await asyncio.wait_for(_until(lambda: len(playback._awaiting_mark) == 2), 5)
    await drain(channel)
    events = sink.events()
    assert events.count("mark") == 2
    assert events[-1] == "mark"
    marks = [m["mark"]["name"] for m in sink.messages if m["event"] == "mark"]
    assert marks == [first.mark_name, second.mark_name]
    expected = provider.audio_for("one two", playback.config)
    n1 = -(-len(expected) // 160) * 160  # padded up to whole frames with 0xFF
    assert sink.audio()[: len(expected)] == expected
    assert sink.audio()[len(expected) : n1] == b"\xff" * (n1 - len(expected))
    assert events.index("mark") == n1 // 160  # the mark right after the first reply
    assert not first.done()
    assert playback.on_mark(first.mark_name)
    assert await first == ReplyStatus.PLAYED and first.mark_echoed
    assert not playback.on_mark("reply-unknown")
    playback.on_mark(second.mark_name)
    assert await second == ReplyStatus.PLAYED
    await playback.close()


async def test_mark_timeout_counts_the_reply_finished():
    playback, _, _, _ = make_playback({"seconds": 0.04}, lead_ms=10_000, mark_timeout_ms=50)
    reply = playback.say("x")
    status = await asyncio.wait_for(reply.wait(), 5)
    assert status is ReplyStatus.PLAYED
    assert not reply.mark_echoed
    await playback.close()


async def test_queue_takes_eight_and_refuses_the_ninth():
    playback, _, _, _ = make_playback({"seconds": 5.0})
    replies = [playback.say(f"reply {i}") for i in range(8)]
    with pytest.raises(PlaybackQueueFull, match="max_queued_replies = 8"):
        playback.say("the ninth")
    assert playback.pending == 8
    await playback.close()
    assert [r.status for r in replies] == [ReplyStatus.CANCELLED] * 8


async def test_barge_in_cancels_playing_and_queued_and_sends_clear_first():
    playback, provider, sink, channel = make_playback({"seconds": 10.0, "chunk_delay_s": 0.001})
    playing = playback.say("long one")
    queued = playback.say("next one")
    await asyncio.wait_for(_until(lambda: playing.frames_sent >= 6), 5)
    assert playback.barge_in()
    # settled at once, so the app's on_speech_start already sees them cancelled
    assert playing.status is ReplyStatus.CANCELLED
    assert queued.status is ReplyStatus.CANCELLED
    assert await playing == ReplyStatus.CANCELLED
    assert await queued == ReplyStatus.CANCELLED
    # the queued one was being synthesised ahead (prefetch): both closed, none of it sent
    syntheses = {s.text: s for s in provider.syntheses}
    assert sorted(syntheses) == ["long one", "next one"]
    for synthesis in syntheses.values():
        await asyncio.wait_for(_until(lambda s=synthesis: s.closed_at is not None), 1)
    assert syntheses["long one"].completed is False
    assert queued.frames_sent == 0
    await drain(channel)
    assert sink.events()[-1] == "clear"
    assert "mark" not in sink.events()
    await asyncio.wait_for(_until(lambda: not playback.speaking), 1)
    assert not playback.barge_in()  # nothing left to clear: no second clear
    # and playback goes on afterwards
    playback.config = playback.config.model_copy(update={"seconds": 0.1})
    after = playback.say("after")
    await asyncio.wait_for(_until(lambda: bool(playback._awaiting_mark)), 5)
    playback.on_mark(after.mark_name)
    assert await after == ReplyStatus.PLAYED
    await playback.close()


async def test_barge_in_purges_unsent_frames_and_cancels_awaited_marks():
    sink_messages: list[str] = []
    gate = asyncio.Event()

    async def stuck_send(text: str) -> None:
        await gate.wait()
        sink_messages.append(json.loads(text)["event"])

    channel = OutboundChannel(stuck_send, lambda: 0, 1 << 30, lambda _n: None)
    channel.start()
    provider = FakeSpeechProvider()
    playback = Playback(channel, SID, provider, FakeTTSConfig(seconds=0.1), lead_ms=10_000)
    reply = playback.say("x")
    await asyncio.wait_for(_until(lambda: bool(playback._awaiting_mark)), 5)
    assert playback.barge_in()
    assert await reply == ReplyStatus.CANCELLED
    gate.set()
    await asyncio.wait_for(_until(lambda: "clear" in sink_messages), 5)
    # at most the one frame already being written went out before the clear
    assert sink_messages.index("clear") <= 1
    assert "mark" not in sink_messages
    await playback.close()


async def test_tts_failure_fails_the_reply_and_playback_goes_on():
    playback, _, _, _ = make_playback({"seconds": 1.0, "fail_after_chunks": 2}, lead_ms=10_000)
    bad = playback.say("broken")
    with pytest.raises(ProviderError, match="dropped"):
        await bad
    assert bad.status is ReplyStatus.FAILED
    playback.config = playback.config.model_copy(update={"fail_after_chunks": None})
    good = playback.say("fine")
    await asyncio.wait_for(_until(lambda: bool(playback._awaiting_mark)), 5)
    playback.on_mark(good.mark_name)
    assert await good == ReplyStatus.PLAYED
    await playback.close()


async def test_pcm16_24k_tts_is_converted_to_mulaw_frames():
    playback, _, sink, channel = make_playback({"format": "pcm16", "seconds": 0.5}, lead_ms=10_000)
    assert playback.provider.output_format(playback.config) == PCM16_24K
    playback.say("x")
    await asyncio.wait_for(_until(lambda: bool(playback._awaiting_mark)), 5)
    await drain(channel)
    media = [m for m in sink.messages if m["event"] == "media"]
    assert all(len(base64.b64decode(m["media"]["payload"])) == 160 for m in media)
    assert abs(len(sink.audio()) - 4000) <= 160  # 0.5 s at 8 kHz, whole frames
    await playback.close()


async def test_empty_reply_plays_nothing_and_sends_no_mark():
    playback, _, sink, channel = make_playback()
    reply = playback.say("")
    assert await asyncio.wait_for(reply.wait(), 5) == ReplyStatus.PLAYED
    await drain(channel)
    assert sink.messages == []
    await playback.close()


async def test_streamed_text_reply():
    playback, provider, _, _ = make_playback({"ms_per_char": 5}, lead_ms=10_000)

    async def pieces():
        for piece in ["Hello there. ", "How are ", "you?"]:
            yield piece

    reply = playback.say(pieces())
    await asyncio.wait_for(_until(lambda: bool(playback._awaiting_mark)), 5)
    assert [s.text for s in provider.syntheses] == ["Hello there.", "How are you?"]
    assert reply.text is None
    playback.on_mark(reply.mark_name)
    assert await reply == ReplyStatus.PLAYED
    await playback.close()


async def test_say_refused_without_provider_or_after_close():
    sink = Sink()
    channel = OutboundChannel(sink.send, lambda: 0, 1 << 30, lambda _n: None)
    with pytest.raises(PlaybackError, match="no TTS provider"):
        Playback(channel, SID, None).say("x")
    playback, _, _, _ = make_playback()
    await playback.close()
    with pytest.raises(PlaybackError, match="ended"):
        playback.say("x")


async def _until(predicate) -> None:
    """Yield to the loop until ``predicate()`` holds (the playback has no event for every
    state a test looks at; callers bound it with ``asyncio.wait_for``)."""
    while not predicate():  # noqa: ASYNC110
        await asyncio.sleep(0)


async def test_the_next_reply_is_synthesised_while_the_current_one_plays():
    """Sentences as separate replies: the second's TTS starts once the first has sent audio,
    not after its last frame, so a TTS slower to start than the lead leaves no gap; its
    audio follows the first's in order, whole."""
    playback, provider, sink, channel = make_playback(
        {"seconds": 0.4, "chunk_delay_s": 0.05, "chunk_pattern": [800]}
    )
    first = playback.say("first sentence.")
    second = playback.say("second sentence.")
    await asyncio.wait_for(_until(lambda: len(provider.syntheses) == 2), 5)
    assert [s.text for s in provider.syntheses] == ["first sentence.", "second sentence."]
    assert first.frames_sent < 20  # the first is still sending (20 frames in all)
    assert first.frames_sent >= 1 and second.frames_sent == 0
    await asyncio.wait_for(_until(lambda: bool(playback._awaiting_mark)), 5)
    playback.on_mark(first.mark_name)
    await asyncio.wait_for(_until(lambda: second.mark_name in playback._awaiting_mark), 5)
    playback.on_mark(second.mark_name)
    assert await first == await second == ReplyStatus.PLAYED
    assert (first.frames_sent, second.frames_sent) == (20, 20)
    await drain(channel)
    expected = b"".join(
        provider.audio_for(text, playback.config)
        for text in ("first sentence.", "second sentence.")
    )
    assert sink.audio() == expected


async def test_a_failed_prefetch_fails_its_own_reply_only():
    playback, _, _, _ = make_playback(
        {"seconds": 0.2, "chunk_pattern": [160], "chunk_delay_s": 0.001}
    )
    first = playback.say("fine.")
    await asyncio.wait_for(_until(lambda: first.frames_sent >= 1), 5)
    playback.config = playback.config.model_copy(update={"fail_after_chunks": 0})
    second = playback.say("broken.")
    await asyncio.wait_for(_until(lambda: bool(playback._awaiting_mark)), 5)
    playback.on_mark(first.mark_name)
    assert await first == ReplyStatus.PLAYED
    with pytest.raises(ProviderError):
        await second


async def test_pause_keeps_the_unplayed_audio_and_resume_sends_it_again():
    playback, _, sink, channel = make_playback({"seconds": 1.0, "chunk_delay_s": 0.001})
    assert not playback.pause()  # nothing playing: nothing sent
    reply = playback.say("a reply")
    await asyncio.wait_for(_until(lambda: reply.frames_sent >= 10), 5)
    assert playback.pause() and playback.paused
    await drain(channel)
    assert "clear" in sink.events()
    frames_at_pause = reply.frames_sent
    await asyncio.sleep(0.1)
    assert reply.frames_sent == frames_at_pause  # nothing goes out while paused
    before = len(sink.audio())
    assert playback.resume() and not playback.paused
    await drain(channel)
    resent = len(sink.audio()) - before
    assert 0 < resent <= 160 * 6  # the lead (100 ms) Twilio had not played, sent again
    await asyncio.wait_for(_until(lambda: bool(playback._awaiting_mark)), 5)
    playback.on_mark(reply.mark_name)
    assert await reply == ReplyStatus.PLAYED and reply.frames_sent == 50


async def test_barge_in_after_a_pause_drops_what_was_kept():
    playback, _, _, _ = make_playback({"seconds": 1.0, "chunk_delay_s": 0.001})
    reply = playback.say("a reply")
    queued = playback.say("another")
    await asyncio.wait_for(_until(lambda: reply.frames_sent >= 10), 5)
    assert playback.pause()
    assert playback.barge_in()
    assert await reply == ReplyStatus.CANCELLED and await queued == ReplyStatus.CANCELLED
    assert not playback.paused and not playback.resume()


async def test_audio_synthesised_ahead_plays_on_the_say_of_its_text_without_a_second_request():
    playback, provider, sink, channel = make_playback({"ms_per_char": 10})
    held = playback.synthesize_ahead("Nine to five.")
    assert held is not None
    await _until(lambda: provider.syntheses and provider.syntheses[0].completed)
    await drain(channel)
    assert sink.messages == []  # held, not sent
    reply = playback.say("Nine to five.")
    await _until(lambda: reply.frames_sent > 0 and playback._active is None)
    await drain(channel)
    assert [s.text for s in provider.syntheses] == ["Nine to five."]
    expected = provider.audio_for("Nine to five.", FakeTTSConfig(ms_per_char=10))
    assert sink.audio().startswith(expected)
    await playback.close()


async def test_aborted_or_unmatched_audio_ahead_is_never_sent():
    playback, provider, sink, channel = make_playback({"ms_per_char": 10})
    dropped = playback.synthesize_ahead("Pardon?")
    assert dropped is not None
    dropped.abort()
    assert dropped.closed
    reply = playback.say("Pardon?")  # said anyway: a fresh synthesis, not the dropped one
    await _until(lambda: reply.frames_sent > 0 and playback._active is None)
    assert [s.text for s in provider.syntheses] == ["Pardon?", "Pardon?"]

    # At most MAX_AHEAD held: the oldest is dropped; what is never said is closed at the end.
    first, second, third = (playback.synthesize_ahead(t) for t in ("one.", "two.", "three."))
    assert first is not None and first.closed and not second.closed
    await playback.close()
    assert second.closed and third.closed
    await drain(channel)
    pardon = provider.audio_for("Pardon?", FakeTTSConfig(ms_per_char=10))
    assert len(sink.audio()) < len(pardon) + 160  # the one "Pardon?" said, nothing held
