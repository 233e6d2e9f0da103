"""Timing the conversation's turns: from the end of the caller's speech to the bot's first
audio, with the stages between.

One :class:`TurnTimer` goes with every responder stream the conversation speaks
(:class:`~voicehost.conversation_speech.Speech`): the greeting, the answer to a caller's final
transcript (``trigger="speech"``) and the answer to a key press (``trigger="dtmf"``). Its
times are ``time.monotonic()`` seconds, the clock of the server's playback
(``Reply.first_audio_at``):

* ``speech_end_at``: the caller stopped speaking (the STT provider's optional
  ``on_speech_end``; :meth:`voicehost.server.call_stt.CallTranscription.take_final`), None
  when the provider reports no speech end;
* ``final_at``: the final transcript reached the call (or the key press, or None for the
  greeting);
* ``asked_at``: the responder was asked; ``first_token_at``: its first text;
  ``responder_done_at``: its stream ended (or was closed);
* ``first_say_at``: the first sentence was handed to the playback (TTS asked);
  ``first_audio_at``: the answer's first 20 ms frame went to Twilio's socket;
* ``ended_at``: everything said has played, or was cut off (``cut_off``).

Once the answer is over the conversation reports it (:mod:`voicehost.conversation`): to
:mod:`voicehost.metrics` (:func:`observe`), to the records (:meth:`TurnTimer.timings`, for a
caller's final) and to the traces (:meth:`TurnTimer.stages`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import attrs

from voicehost import metrics
from voicehost.records import TurnTimings

__all__ = ["Stage", "Trigger", "TurnTimer", "observe"]

#: What made the responder speak: the call's start, a caller's final transcript, a key press.
Trigger = Literal["greeting", "speech", "dtmf"]
#: One stage of a turn for the traces: (span name, start, end), monotonic s.
Stage = tuple[str, float, float]


@attrs.define(eq=False)
class TurnTimer:
    """The times of one answer (see the module docstring); all ``time.monotonic()`` s."""

    trigger: Trigger
    asked_at: float = attrs.field(factory=time.monotonic)
    final_at: float | None = None
    speech_end_at: float | None = None
    first_token_at: float | None = None
    responder_done_at: float | None = None
    first_say_at: float | None = None
    first_audio_at: float | None = None
    ended_at: float | None = None
    cut_off: bool = False

    # --- noted by the speech -----------------------------------------------------------------

    def token(self) -> None:
        """The responder's text came (only the first counts)."""
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()

    def said(self) -> None:
        """A sentence was handed to the playback (only the first counts)."""
        if self.first_say_at is None:
            self.first_say_at = time.monotonic()

    def responder_done(self) -> None:
        """The responder's stream ended (or was closed)."""
        if self.responder_done_at is None:
            self.responder_done_at = time.monotonic()

    def audio(self, at: float | None) -> None:
        """A reply of this answer sent its first frame at ``at`` (None: it sent none); the
        earliest is the answer's first audio."""
        if at is not None and (self.first_audio_at is None or at < self.first_audio_at):
            self.first_audio_at = at

    # --- read by the conversation ------------------------------------------------------------

    @property
    def start_at(self) -> float:
        """Where the turn begins: the end of the caller's speech, else the final's (or the key
        press's) arrival, else when the responder was asked (the greeting)."""
        for at in (self.speech_end_at, self.final_at):
            if at is not None:
                return at
        return self.asked_at

    def turn_latency(self) -> float | None:
        """End of the caller's speech (else the final's arrival) → first bot audio, s; None
        unless this answers a caller's final transcript and its audio went out."""
        if self.trigger != "speech" or self.first_audio_at is None:
            return None
        latency = self.first_audio_at - self.start_at
        return latency if latency >= 0 else None

    def timings(self, ms: Callable[[float], int]) -> TurnTimings:
        """The times the records keep, as ``ms`` (monotonic s → ms from the stream's start)
        gives them."""

        def at(value: float | None) -> int | None:
            return None if value is None else ms(value)

        first_token = self.first_token_at
        if first_token is not None and self.final_at is not None:
            # a reply prepared before the final (preemptive generation): its text was there
            # when the final came
            first_token = max(first_token, self.final_at)
        return TurnTimings(
            speech_end_ms=at(self.speech_end_at),
            final_ms=at(self.final_at),
            first_token_ms=at(first_token),
            first_audio_ms=at(self.first_audio_at),
        )

    def stages(self) -> list[Stage]:
        """The turn's stages that happened, for the traces: ``stt.final`` (end of speech →
        final), ``responder`` (asked → its stream ended), ``tts.first_audio`` (first sentence
        handed to the playback → first audio), ``playback`` (first audio → the end)."""
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        found: list[tuple[str, float | None, float | None]] = [
            ("stt.final", self.speech_end_at, self.final_at),
            ("responder", self.asked_at, self.responder_done_at or end),
            ("tts.first_audio", self.first_say_at, self.first_audio_at),
            ("playback", self.first_audio_at, end),
        ]
        return [
            (name, start, stop)
            for name, start, stop in found
            if start is not None and stop is not None and stop >= start
        ]


def observe(timer: TurnTimer, responder_id: str) -> None:
    """Count an answer in :mod:`voicehost.metrics`: the responder's time to first text
    (labelled ``responder_id``) and, answering a caller's final, the turn latency. (The STT
    final latency is counted where the final arrives, the TTS time to first byte by the
    playback.)"""
    if timer.first_token_at is not None:
        metrics.observe_responder_first_token(responder_id, timer.first_token_at - timer.asked_at)
    latency = timer.turn_latency()
    if latency is not None:
        metrics.observe_turn_latency(latency)
