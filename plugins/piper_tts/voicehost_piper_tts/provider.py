"""The ``piper`` TTS provider: offline synthesis with Piper, streamed sentence by sentence.

Piper phonemizes the whole text with espeak-ng, which splits it into sentences, then runs the
VITS model once per sentence (``PiperVoice.synthesize`` yields one ``AudioChunk`` a sentence).
Each sentence's PCM16 leaves as soon as it is made, so the first audio of a long reply is
playing while the rest is synthesized. The model runs on a small shared thread pool, feeding
an ``asyncio.Queue``; closing the iterator stops synthesis after the sentence in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Final

import attrs

from voicehost.contracts import PCM16_16K, PCM16_22K, PCM16_24K, AudioFormat, SpeechProvider
from voicehost.errors import ConfigError, ProviderError
from voicehost.provider_config import check_known_keys
from voicehost_piper_tts.voice import BUNDLED_VOICE, load_voice, resolve_voice

PROVIDER_ID: Final = "piper"

DEFAULT_CONFIG: Final[Mapping[str, Any]] = {
    # The bundled voice's name, or a path to any Piper .onnx (its .onnx.json beside it).
    "voice": BUNDLED_VOICE,
    # Phoneme length: < 1 speaks faster, > 1 slower.
    "length_scale": 1.0,
    # Generator noise (expressiveness) and phoneme-width noise (rhythm variation).
    "noise_scale": 0.667,
    "noise_w": 0.8,
    # Silence inserted between sentences, ms.
    "sentence_silence_ms": 0,
}

#: Threads running Piper for all calls of the process (each ONNX run uses its own op threads).
_pool = ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1), thread_name_prefix="piper")


@attrs.frozen
class PiperSettings:
    """A validated ``[tts.piper]`` blob (see :data:`DEFAULT_CONFIG`)."""

    voice: str
    length_scale: float
    noise_scale: float
    noise_w: float
    sentence_silence_ms: int


def _number(merged: Mapping[str, Any], key: str, low: float, high: float) -> float:
    value = merged[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"[tts.piper] {key} must be a number from {low} to {high}, got {value!r}")
    return float(value)


def parse_config(config: Mapping[str, Any]) -> PiperSettings:
    """Validate a config blob (missing keys take :data:`DEFAULT_CONFIG` values).

    Raises:
        ConfigError: naming the ``[tts.piper]`` key at fault (unknown keys included).
    """
    check_known_keys(config, DEFAULT_CONFIG, "[tts.piper]")
    merged = {**DEFAULT_CONFIG, **config}
    voice = merged["voice"]
    if not isinstance(voice, str):
        raise ConfigError(f"[tts.piper] voice must be a string, got {voice!r}")
    silence = merged["sentence_silence_ms"]
    if isinstance(silence, bool) or not isinstance(silence, int) or not 0 <= silence <= 5000:
        raise ConfigError(
            f"[tts.piper] sentence_silence_ms must be an integer from 0 to 5000, got {silence!r}"
        )
    return PiperSettings(
        voice=voice,
        length_scale=_number(merged, "length_scale", 0.1, 5.0),
        noise_scale=_number(merged, "noise_scale", 0.0, 2.0),
        noise_w=_number(merged, "noise_w", 0.0, 2.0),
        sentence_silence_ms=silence,
    )


class PiperProvider(SpeechProvider):
    """Local Piper TTS. Yields PCM16 mono at the voice's rate (22 050 Hz for the default)."""

    id: ClassVar[str] = PROVIDER_ID
    label: ClassVar[str] = "Piper (offline)"
    output_formats: ClassVar[tuple[AudioFormat, ...]] = (PCM16_22K, PCM16_16K, PCM16_24K)
    default_config: ClassVar[Mapping[str, Any]] = DEFAULT_CONFIG

    def validate_config(self, config: Mapping[str, Any]) -> None:
        """Check the blob and that the voice files exist (does not load the model).

        Raises:
            ConfigError: naming the key at fault.
        """
        resolve_voice(parse_config(config).voice)

    def preload(self, config: Mapping[str, Any]) -> None:
        """Load the configured voice now, so the first reply does not wait for it (1–3 s).
        Blocking: run it off the event loop, e.g.
        ``await asyncio.to_thread(provider.preload, config)`` at server start-up.

        Raises:
            ConfigError: bad config, missing or unloadable voice.
        """
        load_voice(resolve_voice(parse_config(config).voice))

    def output_format(self, config: Mapping[str, Any]) -> AudioFormat:
        """PCM16 mono at the configured voice's sample rate.

        Raises:
            ConfigError: the config or voice is invalid.
        """
        return AudioFormat("pcm16", resolve_voice(parse_config(config).voice).sample_rate)

    def synthesize(self, text: str, config: Mapping[str, Any]) -> AsyncIterator[bytes]:
        """Speak ``text``: PCM16 chunks, one per sentence (plus ``sentence_silence_ms``).

        Empty or blank text yields nothing.

        Raises:
            TypeError: ``text`` is not a string (at once).
            ConfigError: (while iterating) bad config or an unloadable voice.
            ProviderError: (while iterating) Piper failed on this text.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return self._stream(text, config)

    async def _stream(self, text: str, config: Mapping[str, Any]) -> AsyncIterator[bytes]:
        settings = parse_config(config)
        files = resolve_voice(settings.voice)
        if not text.strip():
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def put(item: bytes | BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def produce() -> None:
            try:
                from piper import SynthesisConfig

                voice = load_voice(files)
                syn_config = SynthesisConfig(
                    length_scale=settings.length_scale,
                    noise_scale=settings.noise_scale,
                    noise_w_scale=settings.noise_w,
                )
                gap = bytes(2 * files.sample_rate * settings.sentence_silence_ms // 1000)
                for index, chunk in enumerate(voice.synthesize(text, syn_config)):
                    if stop.is_set():
                        return
                    if index and gap:
                        put(gap)
                    put(chunk.audio_int16_bytes)
            except BaseException as exc:
                put(exc)
            finally:
                put(None)

        loop.run_in_executor(_pool, produce)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, ConfigError):
                    raise item
                if isinstance(item, BaseException):
                    raise ProviderError(PROVIDER_ID, f"synthesis failed: {item}") from item
                yield item
        finally:
            stop.set()
