"""What a final decode hears before its utterance: the call's recent audio and its finals.

Whisper decodes one utterance at a time here, but it transcribes noisy speech better with
the speech before it in the window, as when a whole recording is decoded at once. The
encoder window is at least 10 s anyway (:mod:`voicehost_whisper_stt.window`), so most of it
would be zero padding; :class:`CallContext` fills it with the audio of the call's previous
finals instead, and their text is forced as the decoder's prefix, each final a timed
segment: the decoder continues after words it has already said, over audio it has already
heard, and generates only the new utterance's words. An utterance with no earlier final in
the window gets the line's last :data:`LEAD_MS` before it instead (its noise, no words).

Measured with ``bench/noisy_calls.py``'s noisy set (real speech, pink, babble and street
noise at 20, 10 and 5 dB SNR, three noise excerpts each), together with the segmenter's
lead-in and the resumed decodes: streamed WER went from 1.9-15.1 points over batch
Whisper to -1.1-10.2 (within 3 in eight of the nine rows; with the noisy-line decode below,
-1.3-3.0 in all nine).

On a line so noisy that its loud and quiet moments are close (:func:`final_context`), the
decode is made more like a batch decode still: the context reaches up to 29 s back, the
finals beyond the usual window given as the prompt's text (read in one pass, where forced
tokens cost a beam step each), and the encoder runs Whisper's whole 30 s window.

Positions are sample indexes (16 kHz) from the start of the session's audio, the same
timeline as the :class:`~voicehost_whisper_stt.segmenter.Segmenter`'s ``start_ms`` × 16.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Final

import attrs
import numpy as np

from voicehost_whisper_stt.noise_floor import level_spread_db

__all__ = ["LEAD_MS", "CallContext", "Context", "final_context"]

#: Samples per ms at 16 kHz.
_PER_MS: Final = 16
#: The line's audio given before an utterance that has no earlier final in the window, ms:
#: Whisper hears the line's noise before the words (as in a batch decode of the whole call),
#: and the decoder is told the utterance starts after it (``bench/noisy_calls.py``, three
#: takes: babble at 5 dB SNR 9.1 → 1.9 points over batch, pink at 20 dB 0.3 → -1.1).
LEAD_MS: Final = 1000


@attrs.frozen(eq=False)
class Context:
    """The context of one decode.

    Attributes:
        audio: float32 16 kHz samples just before the utterance (whole previous finals and
            what lay between them).
        finals: the finals heard in ``audio``: (start, end, text), start and end in samples
            from the start of ``audio``.
        prompt: text said before ``audio`` (Whisper's previous-text prompt), "" if none.
    """

    audio: np.ndarray
    finals: tuple[tuple[int, int, str], ...]
    prompt: str

    @property
    def text(self) -> str:
        """The transcript of ``audio``: its finals, joined."""
        return " ".join(text for _, _, text in self.finals)


@attrs.frozen
class _Final:
    start: int
    end: int
    text: str


class CallContext:
    """The last ``keep_s`` of a call's audio (a ring buffer) and the spans of its finals.

    Args:
        keep_s: audio kept, s (at least the longest context asked for).
    """

    def __init__(self, keep_s: float = 30.0) -> None:
        self._ring = np.zeros(int(keep_s * 1000 * _PER_MS), dtype=np.float32)
        self._written = 0  # samples heard so far (absolute index of the next one)
        self._finals: deque[_Final] = deque(maxlen=32)
        self._lock = threading.Lock()  # hear() on the event loop, before() on a worker

    @property
    def heard(self) -> int:
        """Samples heard so far."""
        return self._written

    def hear(self, samples: np.ndarray) -> None:
        """Append float32 16 kHz samples (the ones fed to the segmenter, in order)."""
        with self._lock:
            self._hear(samples)

    def _hear(self, samples: np.ndarray) -> None:
        size = len(self._ring)
        if len(samples) >= size:
            samples = samples[-size:]
            self._written += len(samples) - size  # skipped samples still count
        at = self._written % size
        first = min(len(samples), size - at)
        self._ring[at : at + first] = samples[:first]
        self._ring[: len(samples) - first] = samples[first:]
        self._written += len(samples)

    def said(self, start: int, samples: int, text: str) -> None:
        """Record a confirmed final: its audio began at sample ``start`` and lasted
        ``samples``; ``text`` is what Whisper made of it ("" is ignored)."""
        if text.strip():
            with self._lock:
                self._finals.append(_Final(start, start + samples, text.strip()))

    def before(
        self,
        start: int,
        samples: int,
        *,
        window: int,
        lead: int = LEAD_MS * _PER_MS,
        forced: int | None = None,
    ) -> Context | None:
        """The context for an utterance of ``samples`` beginning at sample ``start``: the
        latest whole finals that end by ``start`` and fit, with the utterance, in ``window``
        samples, and the audio from the first of them up to ``start``. When no final fits,
        the ``lead`` samples of the line just before the utterance (at least half of them
        must fit), with no finals. None when nothing fits or the audio is no longer kept.

        With ``forced`` (samples, at most ``window``), only the finals that fit that span
        with the utterance are the context's ``finals`` (forced as the decoder's prefix, one
        beam step per token); the text of the earlier ones in ``window`` joins the
        ``prompt`` (read in one pass), their audio stays."""
        with self._lock:  # said() and hear() run on other threads
            return self._before(start, samples, window=window, lead=lead, forced=forced)

    def _before(
        self, start: int, samples: int, *, window: int, lead: int, forced: int | None
    ) -> Context | None:
        first: _Final | None = None
        chosen: list[_Final] = []
        for final in reversed(self._finals):
            if final.end > start + 50 * _PER_MS or start + samples - final.start > window:
                break
            first = final
            chosen.append(final)
        kept_from = self._written - len(self._ring)
        if first is None and lead > 0:  # no final: the line's audio just before, if it fits
            begin = max(start - lead, kept_from, 0, start + samples - window)
            if start - begin < lead // 2:
                return None
            earlier = [f.text for f in self._finals if f.end <= begin]
            return Context(
                self._slice(begin, min(start, self._written)), (), earlier[-1] if earlier else ""
            )
        if first is None or first.start < kept_from or start <= first.start:
            return None
        chosen.reverse()
        earlier = [f.text for f in self._finals if f.end <= first.start]
        prompt = earlier[-1:]
        if forced is not None:
            prompt += [f.text for f in chosen if start + samples - f.start > forced]
            chosen = [f for f in chosen if start + samples - f.start <= forced]
        end = min(start, self._written)
        return Context(
            audio=self._slice(first.start, end),
            finals=tuple(
                (f.start - first.start, min(f.end, end) - first.start, f.text) for f in chosen
            ),
            prompt=" ".join(prompt),
        )

    def recent(self, end: int, samples: int) -> np.ndarray:
        """The kept audio of the ``samples`` before sample ``end`` (fewer when not kept)."""
        with self._lock:
            end = min(end, self._written)
            begin = max(end - samples, self._written - len(self._ring), 0)
            return self._slice(begin, end)

    def _slice(self, begin: int, end: int) -> np.ndarray:
        size = len(self._ring)
        a, b = begin % size, end % size
        if end - begin <= 0:
            return np.zeros(0, dtype=np.float32)
        if a < b:
            return self._ring[a:b].copy()
        return np.concatenate([self._ring[a:], self._ring[:b]])


def final_context(
    heard: CallContext,
    start: int,
    audio: np.ndarray,
    *,
    window_s: float,
    noisy_line_db: float,
    noisy_window_s: float,
) -> tuple[Context | None, bool]:
    """What the final decode of ``audio`` (an utterance from sample ``start``) hears first,
    and whether the line is noisy.

    The context is :meth:`CallContext.before` in ``window_s`` (0: none). The line is noisy
    when the call's last ``noisy_window_s`` (or ``window_s``) and the utterance spread less
    than ``noisy_line_db``
    (:func:`~voicehost_whisper_stt.noise_floor.level_spread_db`; 0: never): the decode
    should then encode Whisper's whole window, and the context reaches ``noisy_window_s``
    back, its finals older than ``window_s`` given as prompt text.

    Measured with ``bench/noisy_calls.py --session --takes 3``, streamed WER over batch
    Whisper: pink noise at 5 dB SNR 10.2 points before, 5.6-5.9 with the longer context or
    the whole window alone, 2.2 with both on the finals of noisy lines. Both helped on
    babble too (10 dB: +3.0 to -2.2) but cost 1.6-4.1 points on street noise: the spread
    over the call's recent audio tells them apart (pink noise at 5 dB SNR: 1.5-10.3 dB;
    street 9.1 or more, babble 11.5 or more; clean speech 17 or more).

    Returns:
        (the context or None, noisy).
    """
    window = int(window_s * 1000 * _PER_MS)
    wide = int(noisy_window_s * 1000 * _PER_MS)
    context = heard.before(start, len(audio), window=window) if window > 0 else None
    noisy = False
    if noisy_line_db > 0:
        line = np.concatenate([heard.recent(start, max(window, wide)), audio])
        noisy = level_spread_db(line) < noisy_line_db
    if noisy and context is not None and wide > window:
        context = heard.before(start, len(audio), window=wide, forced=window) or context
    return context, noisy
