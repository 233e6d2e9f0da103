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
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

from voicehost import (
    PCM16_16K,
    PCM16_22K,
    PCM16_24K,
    AudioFormat,
    ConfigError,
    ProviderError,
    SpeechProvider,
)
from voicehost_piper_tts.config import PROVIDER_ID, PiperConfig
from voicehost_piper_tts.voice import load_voice

#: Threads running Piper for all calls of the process (each ONNX run uses its own op threads).
_pool = ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1), thread_name_prefix="piper")


class PiperProvider(SpeechProvider[PiperConfig]):
    """Local Piper TTS. Yields PCM16 mono at the voice's rate (22 050 Hz for the default).

    Config: :class:`~voicehost_piper_tts.config.PiperConfig` (``[tts.piper]``). Piper and ONNX
    Runtime are imported by :meth:`preload` or the first synthesis, never at plugin import.
    """

    id: ClassVar[str] = PROVIDER_ID
    label: ClassVar[str] = "Piper (offline)"
    config_class: ClassVar[type[PiperConfig]] = PiperConfig
    output_formats: ClassVar[tuple[AudioFormat, ...]] = (PCM16_22K, PCM16_16K, PCM16_24K)

    def preload(self, config: PiperConfig) -> None:
        """Load the configured voice now, so the first reply does not wait for it (1–3 s).
        Blocking: run it off the event loop, e.g.
        ``await asyncio.to_thread(provider.preload, config)`` at server start-up.

        Raises:
            ConfigError: the voice files are missing or not a loadable ONNX voice.
        """
        load_voice(config.voice_files())

    def output_format(self, config: PiperConfig) -> AudioFormat:
        """PCM16 mono at the configured voice's sample rate (``PCM16_22K`` by default).

        Raises:
            ConfigError: the voice files went missing since the config was parsed.
        """
        return config.output_format()

    def synthesize(self, text: str, config: PiperConfig) -> AsyncIterator[bytes]:
        """Speak ``text``: PCM16 chunks, one per sentence (plus ``sentence_silence_ms``).

        Empty or blank text yields nothing.

        Raises:
            TypeError: ``text`` is not a string, or ``config`` not a :class:`PiperConfig`
                (at once).
            ConfigError: (while iterating) missing or unloadable voice files.
            ProviderError: (while iterating) Piper failed on this text.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not isinstance(config, PiperConfig):
            raise TypeError(f"piper: config must be a PiperConfig, got {type(config).__name__}")
        return self._stream(text, config)

    async def _stream(self, text: str, config: PiperConfig) -> AsyncIterator[bytes]:
        files = config.voice_files()
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
                    length_scale=config.length_scale,
                    noise_scale=config.noise_scale,
                    noise_w_scale=config.noise_w,
                )
                gap = bytes(2 * files.sample_rate * config.sentence_silence_ms // 1000)
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
