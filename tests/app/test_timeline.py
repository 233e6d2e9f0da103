"""The two-track call WAV of ``simulate --out``: each side's frames placed at the time they
were sent (caller) or received (bot), as a playback buffer plays them."""

from __future__ import annotations

import attrs
import numpy as np
import soundfile

from voicehost.audio import ulaw_encode, ulaw_to_pcm16_array
from voicehost.simulate.timeline import JITTER_S, CallAudio, place_frames

T0 = 100.0
RATE = 8000
SILENT = b"\xff" * 160


def tone_ulaw(seconds: float, hz: float = 440.0) -> bytes:
    t = np.arange(round(seconds * RATE)) / RATE
    return ulaw_encode((np.sin(2 * np.pi * hz * t) * 12000).astype(np.int16))


def frames(audio: bytes, start: float, step: float = 0.02) -> list[tuple[float, bytes]]:
    """``audio`` cut into 20 ms frames, the k-th at ``start + k * step``."""
    return [(start + k * step, audio[i : i + 160]) for k, i in enumerate(range(0, len(audio), 160))]


def test_a_reply_after_a_pause_starts_at_its_own_time_in_the_right_channel():
    caller_audio = tone_ulaw(0.5, 300)
    reply_audio = tone_ulaw(0.6, 440)
    caller_end = 0.3 + 0.5  # the caller's file: 0.3 s to 0.8 s, sent at real-time pace
    reply_at = caller_end + 1.0  # the bot answers 1.0 s after the caller stopped
    # the server sends its audio a little ahead of real time: frames come 15 ms apart
    audio = CallAudio(
        T0,
        caller=[(T0 + t, a) for t, a in frames(caller_audio, 0.3)],
        bot=[(T0 + t, a) for t, a in frames(reply_audio, reply_at, step=0.015)],
    )
    caller, bot = audio.tracks()
    start = round(reply_at * RATE)
    assert start == 14400
    assert not bot[:start].any()  # nothing before the reply
    np.testing.assert_array_equal(bot[start : start + 4800], ulaw_to_pcm16_array(reply_audio))
    assert len(caller) == len(bot) == start + 4800
    np.testing.assert_array_equal(caller[2400:6400], ulaw_to_pcm16_array(caller_audio))
    assert not caller[:2400].any() and not caller[6400:].any()


def test_frames_sent_early_queue_small_late_gaps_close_and_pauses_stay():
    one = tone_ulaw(0.02)
    # three frames at once (a burst), one 30 ms late (jitter), one after a 200 ms pause
    track = place_frames(
        [(T0, one), (T0, one), (T0, one), (T0 + 0.09, one), (T0 + 0.4, one)], t0=T0
    )
    expected = np.zeros(round(0.42 * RATE), dtype=np.int16)
    pcm = ulaw_to_pcm16_array(one)
    for start in (0, 160, 320, 480, 3200):
        expected[start : start + 160] = pcm
    np.testing.assert_array_equal(track, expected)
    assert JITTER_S * 1000 < 200


def test_frames_out_of_order_and_before_t0():
    one = tone_ulaw(0.02)
    track = place_frames([(T0 + 0.5, one), (T0 - 1.0, one)], t0=T0)
    assert track[:160].any() and not track[160:4000].any() and track[4000:4160].any()


def test_clear_drops_the_audio_not_yet_played():
    reply = tone_ulaw(2.0)
    # the whole 2 s reply arrives within 0.1 s; the caller barges in 0.5 s into it
    received = [(T0 + 1.0 + k * 0.001, a) for k, (_, a) in enumerate(frames(reply, 0))]
    track = place_frames(received, t0=T0, clears=[T0 + 1.5])
    assert len(track) == round(1.5 * RATE)
    np.testing.assert_array_equal(track[8000:], ulaw_to_pcm16_array(reply)[:4000])
    # more audio after the clear starts afresh
    after = place_frames([*received, (T0 + 2.0, reply[:160])], t0=T0, clears=[T0 + 1.5])
    assert len(after) == 16000 + 160 and not after[12000:16000].any()
    # a clear with nothing queued changes nothing
    idle = place_frames(received, t0=T0, clears=[T0 + 0.5, T0 + 5.0])
    assert len(idle) == 8000 + 16000


def test_fast_caller_file_is_laid_out_from_its_send_time_and_the_line_keeps_time():
    file_audio = tone_ulaw(1.0)
    sent = [(T0 + 0.02 * k, SILENT) for k in range(10)]  # the line's silence until 0.2 s
    sent += [(T0 + 0.2, a) for _, a in frames(file_audio, 0)]  # --fast: all of it at once
    sent += [(T0 + 0.2 + 0.02 * k, SILENT) for k in range(1, 100)]  # silence resumes
    sent += [(T0 + 3.0, file_audio[:160])]  # the next file, at 3.0 s
    track = place_frames(sent, t0=T0, drop_queued_silence=True)
    np.testing.assert_array_equal(track[1600:9600], ulaw_to_pcm16_array(file_audio))
    assert track[24000:24160].any() and len(track) == 24160  # not pushed back by the silence


@attrs.define
class RecordedCall:
    """What :class:`~voicehost.testing.twilio.SimulatedCall` records, for CallAudio.of."""

    sent_frames: list
    frame_times: list
    frame_sizes: list
    received_audio: bytearray
    clear_times: list = attrs.field(factory=list)


def test_call_audio_of_a_call_writes_a_two_track_pcm16_8k_wav(tmp_path):
    greeting, reply = tone_ulaw(0.3, 500), tone_ulaw(0.2, 700)
    call = RecordedCall(
        sent_frames=[
            (T0 + 0.5 + 0.02 * k, a) for k, (_, a) in enumerate(frames(tone_ulaw(0.4), 0))
        ],
        frame_times=[T0 + 0.01, T0 + 0.02, T0 + 1.5],
        frame_sizes=[1200, 1200, 1600],
        received_audio=bytearray(greeting + reply),
    )
    audio = CallAudio.of(call, T0)  # type: ignore[arg-type]
    assert [len(a) for _, a in audio.bot] == [1200, 1200, 1600]
    out = tmp_path / "call.wav"
    audio.write(out)
    info = soundfile.info(str(out))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 8000, 2)
    data, _ = soundfile.read(str(out), dtype="int16")
    caller, bot = data[:, 0], data[:, 1]
    np.testing.assert_array_equal(bot[80:2480], ulaw_to_pcm16_array(greeting))
    np.testing.assert_array_equal(bot[12000:13600], ulaw_to_pcm16_array(reply))
    assert not bot[2480:12000].any()
    assert caller[4000:7200].any() and not caller[:4000].any() and not caller[7200:].any()
