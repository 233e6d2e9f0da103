"""Caller speech over the bot: a real interruption, or a back-channel ("mm-hm", a cough)?

With ``[server] barge_in_min_speech_ms`` (400 in the shipped ``plugins.toml``), caller speech
that starts while the bot talks pauses the bot at once (Twilio ``clear``, within the 100 ms
lead) and is judged that long later, on the energy of the inbound frames
(:class:`~voicehost.server.voice_activity.VoiceActivity`):

* still voiced (half of the last :data:`STILL_TALKING_MS`), or voiced for as long as the wait
  itself → a real interruption: the bot is cut off and the app hears the speech start;
* else → a back-channel: the bot goes on where it stopped, and its transcript (the first
  final within :data:`BACK_CHANNEL_FINAL_S`, :data:`BACK_CHANNEL_MAX_WORDS` words at most)
  is not a turn.

``0`` cuts the bot off at the speech start (no judging).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from voicehost import metrics
from voicehost.server.playback import Playback
from voicehost.server.voice_activity import VoiceActivity

log = logging.getLogger(__name__)

__all__ = ["BACK_CHANNEL_FINAL_S", "BACK_CHANNEL_MAX_WORDS", "STILL_TALKING_MS", "BackChannelGate"]

#: The caller is still talking when voiced for half of the last this many ms.
STILL_TALKING_MS = 200
#: A back-channel's transcript comes within this long of it (Whisper's endpoint + decode), s.
BACK_CHANNEL_FINAL_S = 3.0
#: ... and has at most this many words.
BACK_CHANNEL_MAX_WORDS = 3


class BackChannelGate:
    """One call's judge of caller speech over the bot (see the module docstring).

    Args:
        call_sid: for logs.
        playback: the call's playback (paused, resumed or cut off).
        min_speech_ms: ``[server] barge_in_min_speech_ms``; 0 turns the gate off.
        interrupted: called when the speech is a real interruption (the bot is already cut
            off): the call tells the app.
        clock: monotonic clock, s (tests).
    """

    def __init__(
        self,
        call_sid: str,
        playback: Playback,
        min_speech_ms: int,
        interrupted: Callable[[], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.call_sid = call_sid
        self.playback = playback
        self.min_speech_ms = min_speech_ms
        self.voice = VoiceActivity()
        self._interrupted = interrupted
        self._clock = clock
        self._timer: asyncio.TimerHandle | None = None
        self._back_channel_at: float | None = None  # when speech was judged a back-channel

    def feed(self, ulaw: bytes) -> None:
        """One inbound μ-law frame (its level is only measured when the gate is on)."""
        if self.min_speech_ms:
            self.voice.feed(ulaw)

    def speech_started(self) -> bool:
        """The caller started speaking: True when the app should be told now (the bot was
        cut off, or was not talking); False while the speech is being judged (the bot is
        paused, or was already paused for an earlier start)."""
        if self.min_speech_ms and not self.playback.paused:
            if self.playback.pause():
                self.cancel()
                self._timer = asyncio.get_running_loop().call_later(
                    self.min_speech_ms / 1000, self._decide
                )
                return False
        elif self.playback.paused:
            return False  # a decision is pending
        if self.playback.barge_in():
            metrics.count_barge_in()
        return True

    def is_back_channel(self, text: str, *, consume: bool = True) -> bool:
        """True for the transcript of a back-channel (short, soon after it); ``consume``
        forgets the back-channel (its one transcript has come)."""
        at = self._back_channel_at
        if consume:
            self._back_channel_at = None
        short = len(text.split()) <= BACK_CHANNEL_MAX_WORDS
        return at is not None and short and self._clock() - at <= BACK_CHANNEL_FINAL_S

    def cancel(self) -> None:
        """Drop a pending decision (the call is ending, or a new one starts)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _decide(self) -> None:
        self._timer = None
        wait_ms = self.min_speech_ms
        still = self.voice.voiced_ms(STILL_TALKING_MS) >= STILL_TALKING_MS // 2
        # the wait, plus the VAD's delay in reporting the speech start
        long = self.voice.voiced_ms(wait_ms + STILL_TALKING_MS) >= wait_ms
        if still or long:
            if self.playback.barge_in():
                metrics.count_barge_in()
            self._interrupted()
        else:
            log.info("call %s: a back-channel over the bot; it goes on", self.call_sid)
            metrics.count_back_channel()
            self._back_channel_at = self._clock()
            self.playback.resume()
