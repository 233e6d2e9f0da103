"""Turn timings in the call records, and the latency statistics ``voicehost calls stats``
prints.

A caller's ``final`` turn that the bot answered carries four times, each ms from the stream's
start (like the turn's ``at_ms``) and each None when unknown (:class:`TurnTimings`):
``speech_end_ms`` (the caller stopped speaking, as the STT provider reported it through
``on_speech_end``), ``final_ms`` (the final transcript arrived), ``first_token_ms`` (the
responder's first text of its answer) and ``first_audio_ms`` (the answer's first 20 ms frame
was handed to Twilio's socket). The latencies derived from them (:data:`LATENCIES`):

* ``turn``: end of the caller's speech → first bot audio (from the final's arrival when the
  provider reports no speech end: such a turn's latency leaves out the STT's endpointing);
* ``stt_final``: end of speech → final transcript (only with a speech end);
* ``responder_first_token``: final transcript → the responder's first text;
* ``tts_first_audio``: the responder's first text → first bot audio (the rest of the first
  sentence, the TTS's time to first byte and any queueing).

:mod:`voicehost.records.stats` reads them back for ``voicehost calls stats``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import attrs

__all__ = ["LATENCIES", "TIMING_FIELDS", "TurnTimings"]

#: The timing columns of ``turns`` (and the keys of a turn's ``timings`` in the JSON).
TIMING_FIELDS = ("speech_end_ms", "final_ms", "first_token_ms", "first_audio_ms")
#: The latencies derived from a turn's timings, in the order ``calls stats`` prints them.
LATENCIES = ("turn", "stt_final", "responder_first_token", "tts_first_audio")


def _ms(value: Any) -> int | None:
    return None if value is None else int(value)


@attrs.define
class TurnTimings:
    """The times of one answered caller turn, ms from the stream's start (None: unknown).

    Attributes:
        speech_end_ms: the caller stopped speaking (the STT provider's ``on_speech_end``).
        final_ms: the final transcript arrived.
        first_token_ms: the responder's first text of the answer.
        first_audio_ms: the answer's first audio frame went to Twilio's socket.
    """

    speech_end_ms: int | None = attrs.field(default=None, converter=_ms)
    final_ms: int | None = attrs.field(default=None, converter=_ms)
    first_token_ms: int | None = attrs.field(default=None, converter=_ms)
    first_audio_ms: int | None = attrs.field(default=None, converter=_ms)

    def values(self) -> tuple[int | None, ...]:
        """The four times in :data:`TIMING_FIELDS` order (the columns' values)."""
        return (self.speech_end_ms, self.final_ms, self.first_token_ms, self.first_audio_ms)

    def latencies(self) -> dict[str, int | None]:
        """The latencies of :data:`LATENCIES`, ms (None when a time they need is unknown,
        or when it would be negative)."""
        start = self.speech_end_ms if self.speech_end_ms is not None else self.final_ms
        return {
            "turn": _between(start, self.first_audio_ms),
            "stt_final": _between(self.speech_end_ms, self.final_ms),
            "responder_first_token": _between(self.final_ms, self.first_token_ms),
            "tts_first_audio": _between(self.first_token_ms, self.first_audio_ms),
        }

    def to_json(self) -> dict[str, Any]:
        """``{"speech_end_ms", "final_ms", "first_token_ms", "first_audio_ms",
        "latency_ms": {"turn", "stt_final", "responder_first_token", "tts_first_audio"}}``."""
        data: dict[str, Any] = dict(zip(TIMING_FIELDS, self.values(), strict=True))
        data["latency_ms"] = self.latencies()
        return data

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> TurnTimings | None:
        """The timings of a ``turns`` row; None when it has none (every column null, or a
        database from before the timings)."""
        present = row.keys()
        values = [row[name] if name in present else None for name in TIMING_FIELDS]
        if all(value is None for value in values):
            return None
        return cls(*values)


def _between(start: int | None, end: int | None) -> int | None:
    if start is None or end is None or end < start:
        return None
    return end - start
