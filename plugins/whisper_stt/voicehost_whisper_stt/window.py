"""Decoding one utterance with Whisper's encoder run on a window fitted to it.

Whisper pads every input to 30 s (3000 log-mel frames of 10 ms), and on a CPU the encoder of
that window is most of a short utterance's decode: ``tiny.en`` int8 on 2 threads spends
644 ms encoding 30 s, 74 ms encoding 10 s, for a 2 s answer whose decoder steps cost about
100 ms more. CTranslate2's Whisper encoder takes shorter inputs (the positional embedding is
sliced), as whisper.cpp's ``audio_ctx`` does, so a phone utterance is encoded in a window of
``max(10 s, its length + 1 s)``.

A window much shorter than Whisper's training windows makes it repeat itself past the end of
the audio ("Don't throw trash on the street. Don't throw trash on the street. …" with 2.6 s
windows on ``tests/data/human``; none with the 10 s minimum). Three guards keep that out:

* timestamps are decoded, and a segment that starts at or after the end of the audio (the
  model "hearing" the padding) is dropped;
* the decode is bounded to :data:`MAX_TOKENS_PER_S` tokens per second of audio;
* a result whose text compresses too well (a zlib ratio above 2.4, faster-whisper's
  ``compression_ratio_threshold``) or whose average token log-probability is below -1.0
  (its ``log_prob_threshold``) is refused: :func:`decode_in_window` returns None and the
  caller decodes the utterance again the standard way (30 s window, temperature fallback).

Measured on ``tests/data/human`` (``tiny.en``, beam 5, 2 threads, a busy 2-core machine): WER
equal or lower than the 30 s decode on every clip; 519 ms per utterance against 1355 ms.

**After a context** (:class:`~voicehost_whisper_stt.context.Context`): the window holds the
context's audio, then the utterance's; the decoder is given each earlier final as a timed
segment (``<|start|> text <|end|>``) and then the timestamp where the utterance begins, so it
transcribes from there and generates only the utterance's words. CTranslate2 returns those
forced tokens ahead of the new ones (they are cut off) and counts them twice against
``max_length``. A decode after a context that loops, or says one of the context's sentences
again, is refused (None) like an unreliable one.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import attrs
import numpy as np

from voicehost_whisper_stt.cleanup import collapse_repeats, repeats, sentences, words

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer

    from voicehost_whisper_stt.context import Context

__all__ = [
    "MIN_WINDOW_FRAMES",
    "WindowedText",
    "compression_ratio",
    "decode_in_window",
    "fits_window",
    "window_frames",
]

#: Samples per log-mel frame (10 ms at 16 kHz).
HOP = 160
#: Whisper's full window, frames (30 s).
FULL_WINDOW_FRAMES = 3000
#: The shortest encoder window, frames (10 s): shorter ones made ``tiny.en`` repeat itself.
MIN_WINDOW_FRAMES = 1000
#: Padding kept after the audio in the window, frames (1 s of silence, as Whisper saw
#: during training after the end of speech).
MARGIN_FRAMES = 100
#: At most this many tokens per second of audio (fast speech is about 5-6).
MAX_TOKENS_PER_S = 12
#: faster-whisper's defaults for refusing a decode (``compression_ratio_threshold``,
#: ``log_prob_threshold``).
COMPRESSION_LIMIT = 2.4
LOG_PROB_LIMIT = -1.0
#: A segment starting this close to the end of the audio, or later, is the padding heard, s.
_END_TOLERANCE_S = 0.1


@attrs.frozen
class WindowedText:
    """A windowed decode's result.

    Attributes:
        segments: the text of each kept segment, stripped, in order.
        no_speech_prob: Whisper's probability that the window holds no speech (0-1).
        avg_logprob: the average log-probability of the decoded tokens.
        times: each kept segment's (start, end), s from the start of the utterance's audio
            (after any context).
    """

    segments: tuple[str, ...]
    no_speech_prob: float
    avg_logprob: float
    times: tuple[tuple[float, float], ...] = ()

    @property
    def end_s(self) -> float:
        """Where the last kept segment ends, s (0 when none): Whisper may stop before the
        audio does."""
        return self.times[-1][1] if self.times else 0.0


def window_frames(samples: int) -> int:
    """The encoder window for ``samples`` of 16 kHz audio, in frames: the audio plus 1 s,
    at least 10 s, rounded up to a whole second, at most 30 s."""
    frames = max(MIN_WINDOW_FRAMES, samples // HOP + MARGIN_FRAMES)
    return min(FULL_WINDOW_FRAMES, -(-frames // 100) * 100)


def fits_window(samples: int) -> bool:
    """True when ``samples`` of audio (16 kHz) leave the margin inside a window shorter than
    30 s (longer utterances are decoded the standard way)."""
    return samples // HOP + MARGIN_FRAMES < FULL_WINDOW_FRAMES


def compression_ratio(text: str) -> float:
    """How well ``text`` compresses with zlib (raw length / compressed length): repeated text
    scores high (Whisper's repetition check, as faster-whisper's ``get_compression_ratio``)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def decode_in_window(
    model: WhisperModel,
    tokenizer: Tokenizer,
    audio: np.ndarray,
    *,
    beam_size: int,
    previous_text: str | None,
    context: Context | None = None,
    full_window: bool = False,
) -> WindowedText | None:
    """Decode ``audio`` with the encoder on :func:`window_frames` of it (all 30 s with
    ``full_window``).

    Args:
        model: a loaded faster-whisper model.
        tokenizer: its tokenizer for the language and the ``transcribe`` task.
        audio: float32 mono samples at 16 kHz; :func:`fits_window` must hold.
        beam_size: 1 for greedy decoding.
        previous_text: the call's earlier text, given as Whisper's previous-context prompt
            (with ``context``: the context's ``prompt`` instead).
        context: earlier audio and its finals to decode the utterance after (see the module
            docstring); it must fit the window with ``audio``.
        full_window: encode Whisper's whole 30 s window, as a batch decode does (on very
            noisy lines ``tiny.en`` hears better in it; 570 ms more encoder time on 2 CPU
            threads).

    Returns:
        The kept segments, or None when the result looks unreliable (repetitive, or a low
        average log-probability): decode it again in the full window.

    Raises:
        ValueError: ``audio`` (with the context's) does not fit a short window.
    """
    new_s = len(audio) / (HOP * 100)  # the utterance's own audio, s
    if context is not None:
        previous_text = context.prompt or None
        audio = np.concatenate([context.audio, audio])
    if not fits_window(len(audio)):
        raise ValueError(f"{len(audio)} samples do not fit a short window")
    frames = FULL_WINDOW_FRAMES if full_window else window_frames(len(audio))
    features = model.feature_extractor(audio)[:, :frames]
    if features.shape[1] < frames:  # zero mel padding, as faster-whisper's pad_or_trim
        features = np.pad(features, ((0, 0), (0, frames - features.shape[1])))
    encoder_output = model.encode(np.ascontiguousarray(features, dtype=np.float32))
    previous = tokenizer.encode(" " + previous_text.strip()) if previous_text else []
    prompt = model.get_prompt(tokenizer, previous, without_timestamps=False)
    forced = _forced_context(tokenizer, context) if context is not None else []
    duration_s = len(audio) / (HOP * 100)
    max_new = int(new_s * MAX_TOKENS_PER_S) + 10
    result = model.model.generate(
        encoder_output,
        [prompt + forced],
        beam_size=beam_size,
        # CTranslate2 returns the forced tokens with the new ones, and counts them in both
        max_length=min(model.max_length, len(prompt) + 2 * len(forced) + max_new),
        suppress_blank=True,
        suppress_tokens=[-1],
        return_scores=True,
        return_no_speech_prob=True,
        # 1 s, as faster-whisper's max_initial_timestamp (after the context: its end)
        max_initial_timestamp_index=50 + (_timestamp_index(forced[-1], tokenizer) if forced else 0),
    )[0]
    tokens = result.sequences_ids[0]
    # The score is the sum of the log-probabilities over the whole returned sequence's length
    # (forced tokens add nothing to the sum); averaged here over the new tokens, as
    # faster-whisper's avg_logprob.
    cumulative = result.scores[0] * len(tokens)
    if forced and tokens[: len(forced)] == forced:  # CTranslate2 returns the forced prefix
        tokens = tokens[len(forced) :]
    avg_logprob = cumulative / (len(tokens) + 1)
    heard_s = len(context.audio) / (HOP * 100) if context is not None else 0.0
    timed = _segments(tokenizer, tokens, duration_s, first_start_s=heard_s)
    segments = [text for text, _, _ in timed]
    text = " ".join(segments)
    if compression_ratio(text) > COMPRESSION_LIMIT or avg_logprob < LOG_PROB_LIMIT:
        return None
    if context is not None and _strays(text, context):
        return None
    return WindowedText(
        tuple(segments),
        float(result.no_speech_prob),
        float(avg_logprob),
        times=tuple(
            (max(0.0, start - heard_s), max(0.0, min(end, duration_s) - heard_s))
            for _, start, end in timed
        ),
    )


def _segments(
    tokenizer: Tokenizer, tokens: list[int], duration_s: float, *, first_start_s: float = 0.0
) -> list[tuple[str, float, float]]:
    """Split decoded tokens at their timestamp tokens into (text, start s, end s); drop
    segments that start past the end of the audio (``duration_s``). Text before any
    timestamp starts at ``first_start_s`` (where a forced prefix left off); a last segment
    with no closing timestamp runs to the end of the audio."""
    first_timestamp = tokenizer.timestamp_begin
    kept: list[tuple[str, float, float]] = []
    text: list[int] = []
    start: float | None = None

    def close(at: float) -> None:
        if text and (start is None or start < duration_s - _END_TOLERANCE_S):
            segment = tokenizer.decode(text).strip()
            if segment:
                kept.append((segment, first_start_s if start is None else start, at))
        text.clear()

    for token in tokens:
        if token < first_timestamp:
            text.append(token)
            continue
        at = (token - first_timestamp) * 0.02
        if text:  # a segment's end
            close(at)
            start = None
        else:  # a segment's start (or an end and the next start, the same time)
            start = at
    close(duration_s)
    return kept


#: A decode after a context that opens with this many of its words in a row started it over.
_RESTART_WORDS = 4
#: Whisper's timestamp step, s, and its last timestamp index (30 s).
_TIMESTAMP_S = 0.02
_LAST_TIMESTAMP = 1500


def _timestamp(tokenizer: Tokenizer, samples: int) -> int:
    index = min(_LAST_TIMESTAMP, round(samples / (HOP * 100) / _TIMESTAMP_S))
    return tokenizer.timestamp_begin + index


def _timestamp_index(token: int, tokenizer: Tokenizer) -> int:
    """The timestamp index of a timestamp ``token``."""
    return token - tokenizer.timestamp_begin


def _strays(text: str, context: Context) -> bool:
    """True when a decode after ``context`` went astray: it loops, says a sentence of the
    context again (three words or more), or opens with four or more of the context's words
    in a row (Whisper starting the context over: "It's easy to tell the depth of" after
    "It's easy to tell the depth of a well." on babble). The caller may really repeat
    themselves: the decode without context keeps it then."""
    if collapse_repeats(text) != text.strip():
        return True
    if any(repeats(text, said) for said in sentences(context.text)):
        return True
    opening = words(text)[:_RESTART_WORDS]
    return len(opening) >= _RESTART_WORDS and repeats(context.text, " ".join(opening))


def _forced_context(tokenizer: Tokenizer, context: Context) -> list[int]:
    """The decoder prefix for ``context``: each earlier final as a timed segment
    (``<|start|> text <|end|>``), then the timestamp where the new utterance begins, so the
    decoder transcribes from there."""
    tokens: list[int] = []
    last = 0
    for start, end, text in context.finals:
        start, end = max(start, last), max(end, start, last)
        tokens += [
            _timestamp(tokenizer, start),
            *tokenizer.encode(" " + text),
            _timestamp(tokenizer, end),
        ]
        last = end
    tokens.append(_timestamp(tokenizer, max(len(context.audio), last)))
    return tokens
