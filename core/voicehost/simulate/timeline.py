"""The call as it sounded: each side's audio placed on the call's timeline, for ``--out``.

Both sides of a simulated call are lists of 20 ms μ-law frames with the wall-clock time each
was sent (the caller's) or received (the bot's). :func:`place_frames` lays one side out as
PCM16 8 kHz samples from ``t0`` (the stream's start, time 0 of every ``… ms`` figure
``simulate`` prints), the way a playback buffer plays it:

* a frame that comes after a gap starts at its own time, so the caller's silences and the
  bot's pauses (the time it took to answer) are kept: a reply received 1.0 s after the
  stream started starts at sample 8000;
* a frame that comes while the previous one is still playing queues behind it, as in
  Twilio's playback buffer (the server sends the bot's audio a little ahead of real time);
  one that comes at most ``jitter_s`` after the previous one ended closes the gap (network
  and timer jitter, not a pause);
* a ``clear`` (barge-in) drops the bot audio not yet played at that time, as Twilio does;
* silent caller frames that would have to queue more than ``jitter_s`` behind earlier audio
  are dropped: with ``--fast`` a whole file is sent at once, then the line's silence resumes
  at real-time pace; the file is laid out from the time it was sent, the silence under it
  adds nothing (so with ``--fast`` the bot's reply may overlap the end of the caller's file:
  the server heard the file sooner than it takes to play).

:class:`CallAudio` holds both sides of one call; :meth:`CallAudio.write` writes the two-track
WAV (caller left, bot right).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import attrs
import numpy as np

from voicehost.audio import ULAW_SILENCE, ulaw_to_pcm16_array
from voicehost.testing.twilio import SimulatedCall
from voicehost.wavfile import TELEPHONE_RATE, write_two_track_wav

__all__ = ["JITTER_S", "CallAudio", "place_frames"]

#: A frame at most this late after the previous one's end continues it (no gap).
JITTER_S = 0.05


def place_frames(
    frames: Iterable[tuple[float, bytes]],
    *,
    t0: float,
    clears: Iterable[float] = (),
    jitter_s: float = JITTER_S,
    drop_queued_silence: bool = False,
) -> np.ndarray:
    """One side of a call as int16 samples at 8 kHz, sample 0 at time ``t0``.

    Args:
        frames: ``(time.monotonic() sent or received, μ-law bytes)``, in any order.
        t0: the time of sample 0 (earlier frames start at 0).
        clears: times of ``clear`` messages: the audio queued past each is dropped.
        jitter_s: a frame this late after the previous one's end still follows it directly.
        drop_queued_silence: drop all-silent frames that would queue more than ``jitter_s``
            behind earlier audio (the caller's line under a ``--fast`` file).
    """
    rate = TELEPHONE_RATE
    jitter = round(jitter_s * rate)
    events = [(t, 0, audio) for t, audio in frames] + [(t, 1, b"") for t in clears]
    events.sort(key=lambda event: (event[0], event[1]))
    segments: list[tuple[int, np.ndarray]] = []  # (start sample, samples)
    end: int | None = None  # where the queued audio ends
    for at, kind, audio in events:
        sample = max(0, round((at - t0) * rate))
        if kind == 1:  # clear: drop what is queued past this instant
            if end is not None and end > sample:
                while segments and segments[-1][0] >= sample:
                    segments.pop()
                if segments and segments[-1][0] + len(segments[-1][1]) > sample:
                    start, samples = segments[-1]
                    segments[-1] = (start, samples[: sample - start])
                end = sample
            continue
        if not audio:
            continue
        if end is None or sample > end + jitter:
            start = sample  # after a gap: at its own time
        elif (
            drop_queued_silence
            and sample < end - jitter
            and audio.count(ULAW_SILENCE) + audio.count(0x7F) == len(audio)
        ):
            continue
        else:
            start = end  # queued behind the previous frame
        samples = ulaw_to_pcm16_array(audio)
        segments.append((start, samples))
        end = start + len(samples)
    length = max((start + len(samples) for start, samples in segments), default=0)
    track = np.zeros(length, dtype=np.int16)
    for start, samples in segments:
        track[start : start + len(samples)] = samples
    return track


@attrs.define
class CallAudio:
    """Both sides of one simulated call, with their times.

    Attributes:
        t0: ``time.monotonic()`` of the stream's start (sample 0).
        caller: ``(time sent, μ-law)`` of each frame the caller sent.
        bot: ``(time received, μ-law)`` of each frame the bot sent.
        clears: times the bot's audio was cleared (barge-in).
    """

    t0: float
    caller: list[tuple[float, bytes]] = attrs.field(factory=list)
    bot: list[tuple[float, bytes]] = attrs.field(factory=list)
    clears: list[float] = attrs.field(factory=list)

    @classmethod
    def of(cls, call: SimulatedCall, t0: float) -> CallAudio:
        """What the simulator recorded of ``call``, from ``t0``."""
        bot = []
        offset = 0
        for at, size in zip(call.frame_times, call.frame_sizes, strict=True):
            bot.append((at, bytes(call.received_audio[offset : offset + size])))
            offset += size
        return cls(t0, list(call.sent_frames), bot, list(call.clear_times))

    def tracks(self) -> tuple[np.ndarray, np.ndarray]:
        """``(caller, bot)``: int16 8 kHz tracks from ``t0``, of equal length."""
        caller = place_frames(self.caller, t0=self.t0, drop_queued_silence=True)
        bot = place_frames(self.bot, t0=self.t0, clears=self.clears)
        length = max(len(caller), len(bot))
        return _pad(caller, length), _pad(bot, length)

    def write(self, path: str | Path) -> None:
        """Write the call as a PCM16 8 kHz stereo WAV: the caller left, the bot right.

        Raises:
            WavError: the file cannot be written.
        """
        caller, bot = self.tracks()
        write_two_track_wav(path, caller, bot)


def _pad(track: np.ndarray, length: int) -> np.ndarray:
    return np.pad(track, (0, length - len(track))) if len(track) < length else track
