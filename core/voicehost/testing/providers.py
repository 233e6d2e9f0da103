"""Fake STT and TTS providers for tests: no vendor, fully scriptable, observable.

Register them through the real plugin host, as any plugin::

    host = PluginHost()
    host.register(FakeProvidersPlugin(), name="voicehost-fakes")
    # [stt] provider = "fake"   [tts] provider = "fake"

* :class:`FakeTranscriptionProvider` (``fake``; μ-law 8 kHz in) and
  :class:`FakePcm16TranscriptionProvider` (``fake-pcm16``; PCM16 16 kHz in) record every
  session; a test drives a session with :meth:`FakeTranscriptionSession.speech_start`,
  :meth:`~FakeTranscriptionSession.partial` and :meth:`~FakeTranscriptionSession.final`.
  Config ``fail_connect = true`` makes ``connect`` raise, ``connect_delay_s`` delays it.
  Config ``final_after_frames = N`` (with ``final_text``) scripts the session: speech start at
  the first non-silent frame, a final transcript after N frames of it.
* :class:`FakeSpeechProvider` (``fake``) speaks a 440 Hz tone: ``ms_per_char`` of audio per
  character of text (or ``seconds`` in all), in uneven chunks (``chunk_pattern`` bytes),
  ``chunk_delay_s`` between chunks, in ``format`` ``"mulaw"`` (8 kHz) or ``"pcm16"``
  (24 kHz). ``fail_after_chunks = N`` raises a ProviderError. Each synthesis is recorded
  (:class:`Synthesis`) with the time its iterator was closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import ClassVar, Literal

import attrs
from pydantic import Field

from voicehost.config_model import ProviderConfig
from voicehost.contracts import (
    MULAW_8K,
    PCM16_16K,
    PCM16_24K,
    AudioFormat,
    ConversationProvider,
    SpeechProvider,
    TranscriptionProvider,
    TranscriptionRequest,
    TranscriptionSession,
    TurnDetectorProvider,
)
from voicehost.errors import ProviderConnectionError, ProviderError
from voicehost.hookspecs import hookimpl
from voicehost.testing.conversation import FakeConversationProvider
from voicehost.testing.tones import tone
from voicehost.testing.turns import FakeTurnDetectorProvider

__all__ = [
    "FakePcm16TranscriptionProvider",
    "FakeProvidersPlugin",
    "FakeSpeechProvider",
    "FakeTranscriptionProvider",
    "FakeTranscriptionSession",
    "Synthesis",
    "tone",
]


class FakeSTTConfig(ProviderConfig):
    """``[stt.fake]`` / ``[stt.fake-pcm16]``: how the fake session behaves."""

    fail_connect: bool = Field(False, description="connect() raises a ProviderConnectionError.")
    connect_delay_s: float = Field(0.0, ge=0, description="connect() takes this long, s.")
    final_on_close: str = Field("", description="A final transcript flushed by close().")
    final_after_frames: int = Field(
        0, ge=0, description="Script: a final after this many non-silent frames (0: off)."
    )
    final_text: str = Field("hello", description="The scripted final's text.")


class FakeTTSConfig(ProviderConfig):
    """``[tts.fake]``: the tone's length, format and chunking."""

    format: Literal["mulaw", "pcm16"] = Field(
        "mulaw", description="mulaw (8 kHz) or pcm16 (24 kHz)."
    )
    ms_per_char: float = Field(20, ge=0, description="Audio per character of text, ms.")
    seconds: float | None = Field(None, ge=0, description="Audio per synthesis in all, s.")
    chunk_pattern: list[int] = Field(
        default_factory=lambda: [37, 333, 1, 1201, 80],
        description="Chunk sizes in bytes, repeated (empty: one chunk).",
    )
    chunk_delay_s: float = Field(0.0, ge=0, description="Pause before each chunk, s.")
    fail_after_chunks: int | None = Field(
        None, ge=0, description="Raise a ProviderError after this many chunks."
    )


class FakeTranscriptionSession(TranscriptionSession):
    """A scriptable STT session. ``audio`` holds every chunk received, in order."""

    def __init__(self, provider: FakeTranscriptionProvider, request: TranscriptionRequest):
        self.provider = provider
        self.request = request
        self.config: FakeSTTConfig = request.config  # type: ignore[assignment]
        self.audio: list[bytes] = []
        self.connect_calls = 0
        self.close_calls = 0
        self._connected = False
        self._changed = asyncio.Event()
        self._speaking_frames = 0

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def received(self) -> bytes:
        """All audio received, joined."""
        return b"".join(self.audio)

    async def connect(self) -> None:
        self.connect_calls += 1
        delay = self.config.connect_delay_s
        if delay:
            await asyncio.sleep(delay)
        if self.config.fail_connect:
            raise ProviderConnectionError(self.provider.id, "fake connection refused")
        self._connected = True

    def send_audio(self, audio: bytes) -> None:
        self.audio.append(bytes(audio))
        self._changed.set()
        self._script(audio)

    async def close(self) -> None:
        self.close_calls += 1
        flush = self.config.final_on_close
        if flush and self.close_calls == 1:  # a vendor flushing the last words (Finalize)
            await asyncio.sleep(0)
            self.final(str(flush))
        self._connected = False
        self._changed.set()

    # --- what tests drive ------------------------------------------------------------------

    def speech_start(self) -> None:
        """Fire ``on_speech_start`` (the caller started speaking)."""
        self.request.callbacks.on_speech_start()

    def partial(self, text: str) -> None:
        """Fire ``on_partial(text)``."""
        self.request.callbacks.on_partial(text)

    def final(self, text: str) -> None:
        """Fire ``on_transcript(text)``."""
        self.request.callbacks.on_transcript(text)

    def provisional(self, text: str) -> None:
        """Fire ``on_provisional(text)`` (an early final, before the endpoint)."""
        self.request.callbacks.on_provisional(text)

    def speech_end(self, silence_s: float = 0.0) -> None:
        """Fire ``on_speech_end(silence_s)`` (the caller stopped speaking ``silence_s`` ago)."""
        self.request.callbacks.on_speech_end(silence_s)

    async def wait_for_bytes(self, n: int, timeout: float = 10.0) -> bytes:  # noqa: ASYNC109
        """Wait until ``n`` bytes of audio arrived; returns them all."""

        async def check() -> None:
            while sum(map(len, self.audio)) < n:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(check(), timeout)
        return self.received

    def _script(self, audio: bytes) -> None:
        frames = self.config.final_after_frames
        if not frames:
            return
        silent = audio.count(0xFF) + audio.count(0x7F) == len(audio)
        if self._speaking_frames == 0:
            if silent:
                return
            self.speech_start()
        self._speaking_frames += 1
        if self._speaking_frames >= frames:
            self._speaking_frames = 0
            self.final(self.config.final_text)


class FakeTranscriptionProvider(TranscriptionProvider[FakeSTTConfig]):
    """STT ``fake``: takes μ-law 8 kHz (so the host passes Twilio's bytes through)."""

    id: ClassVar[str] = "fake"
    label: ClassVar[str] = "Fake STT (tests)"
    input_formats: ClassVar[tuple[AudioFormat, ...]] = (MULAW_8K,)
    config_class: ClassVar[type[ProviderConfig]] = FakeSTTConfig

    def __init__(self) -> None:
        self.sessions: list[FakeTranscriptionSession] = []
        self._created = asyncio.Event()

    def create_session(self, request: TranscriptionRequest) -> FakeTranscriptionSession:
        session = FakeTranscriptionSession(self, request)
        self.sessions.append(session)
        self._created.set()
        return session

    async def wait_for_session(
        self,
        count: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> FakeTranscriptionSession:
        """Wait until ``count`` sessions exist; returns the ``count``-th."""

        async def check() -> None:
            while len(self.sessions) < count:
                self._created.clear()
                await self._created.wait()

        await asyncio.wait_for(check(), timeout)
        return self.sessions[count - 1]


class FakePcm16TranscriptionProvider(FakeTranscriptionProvider):
    """STT ``fake-pcm16``: takes PCM16 16 kHz only (so the host converts)."""

    id: ClassVar[str] = "fake-pcm16"
    label: ClassVar[str] = "Fake PCM16 16 kHz STT (tests)"
    input_formats: ClassVar[tuple[AudioFormat, ...]] = (PCM16_16K,)


@attrs.define
class Synthesis:
    """One ``synthesize`` call: what was asked, and when it was closed."""

    text: str
    started_at: float
    chunks: int = 0
    bytes: int = 0
    completed: bool = False
    closed_at: float | None = None
    close_kind: str = ""  # "GeneratorExit" (aclose) / "CancelledError" / "" (ran to the end)


class FakeSpeechProvider(SpeechProvider[FakeTTSConfig]):
    """TTS ``fake``: a 440 Hz tone, ``ms_per_char`` per character, in uneven chunks."""

    id: ClassVar[str] = "fake"
    label: ClassVar[str] = "Fake TTS (tests)"
    output_formats: ClassVar[tuple[AudioFormat, ...]] = (MULAW_8K, PCM16_24K)
    config_class: ClassVar[type[ProviderConfig]] = FakeTTSConfig

    def __init__(self) -> None:
        self.syntheses: list[Synthesis] = []
        self.on_close: Callable[[Synthesis], None] | None = None

    def output_format(self, config: FakeTTSConfig) -> AudioFormat:
        return PCM16_24K if config.format == "pcm16" else MULAW_8K

    def audio_for(self, text: str, config: FakeTTSConfig) -> bytes:
        """The exact audio :meth:`synthesize` yields for ``text``."""
        seconds = config.seconds
        if seconds is None:
            seconds = len(text) * config.ms_per_char / 1000
        return tone(seconds, self.output_format(config))

    def synthesize(self, text: str, config: FakeTTSConfig) -> AsyncIterator[bytes]:
        record = Synthesis(text, time.monotonic())
        self.syntheses.append(record)
        return self._stream(text, config, record)

    async def _stream(
        self, text: str, config: FakeTTSConfig, record: Synthesis
    ) -> AsyncIterator[bytes]:
        audio = self.audio_for(text, config)
        pattern = config.chunk_pattern or [len(audio) or 1]
        delay = config.chunk_delay_s
        fail_after = config.fail_after_chunks
        pos = 0
        try:
            for i in range(len(audio)):
                if pos >= len(audio):
                    break
                if fail_after is not None and record.chunks >= int(fail_after):
                    raise ProviderError(self.id, "fake vendor dropped the stream", status=500)
                if delay:
                    await asyncio.sleep(delay)
                size = pattern[i % len(pattern)]
                chunk = audio[pos : pos + size]
                pos += size
                record.chunks += 1
                record.bytes += len(chunk)
                yield chunk
            record.completed = True
        except BaseException as exc:
            record.close_kind = type(exc).__name__
            raise
        finally:
            record.closed_at = time.monotonic()
            if self.on_close is not None:
                self.on_close(record)


class FakeProvidersPlugin:
    """A plugin object registering the fakes (one fresh set of provider objects each)."""

    def __init__(self) -> None:
        self.stt = FakeTranscriptionProvider()
        self.stt_pcm16 = FakePcm16TranscriptionProvider()
        self.tts = FakeSpeechProvider()
        self.conversation = FakeConversationProvider()
        self.turn = FakeTurnDetectorProvider()

    @hookimpl
    def register_turn_detectors(self, register: Callable[[TurnDetectorProvider], None]) -> None:
        register(self.turn)

    @hookimpl
    def register_conversation_providers(
        self, register: Callable[[ConversationProvider], None]
    ) -> None:
        register(self.conversation)

    @hookimpl
    def register_transcription_providers(
        self, register: Callable[[TranscriptionProvider], None]
    ) -> None:
        register(self.stt)
        register(self.stt_pcm16)

    @hookimpl
    def register_speech_providers(self, register: Callable[[SpeechProvider], None]) -> None:
        register(self.tts)
