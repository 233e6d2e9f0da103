"""The contracts between the host and its provider plugins.

They mirror the seed plugin SDK (``RealtimeTranscriptionProviderPlugin``, ``createSession``
with a ``providerConfig`` blob, ``onPartial/onTranscript/onSpeechStart/onError``) in Python
spelling, and LiveKit's ``STTCapabilities`` for capability flags.

A provider is a long-lived object registered once per process through a pluggy hook
(:mod:`voicehost.hookspecs`). Per call, the host asks it for a session (STT) or a stream of
audio (TTS), always handing over the provider's *config blob*: the ``[stt.<id>]`` /
``[tts.<id>]`` table of ``plugins.toml`` merged over the provider's ``default_config``, with
``${VAR}`` references already resolved (see :mod:`voicehost.config`).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any, ClassVar, Literal

import attrs

from voicehost.text import sentences

Encoding = Literal["mulaw", "pcm16"]


@attrs.frozen
class AudioFormat:
    """A raw audio format: no container, no header.

    Attributes:
        encoding: ``"mulaw"`` (G.711 μ-law, one byte a sample) or ``"pcm16"`` (signed 16-bit
            little-endian linear PCM, two bytes a sample).
        sample_rate: samples a second, in Hz (8000, 16000, 22050, 24000 …).
        channels: interleaved channels; telephony is always 1.
    """

    encoding: Encoding
    sample_rate: int
    channels: int = 1

    @property
    def sample_width(self) -> int:
        """Bytes a sample per channel: 1 for μ-law, 2 for PCM16."""
        return 1 if self.encoding == "mulaw" else 2

    @property
    def bytes_per_second(self) -> int:
        """Bytes of one second of audio in this format."""
        return self.sample_rate * self.sample_width * self.channels

    def bytes_for_ms(self, ms: float) -> int:
        """Bytes of ``ms`` milliseconds of audio, rounded down to whole samples."""
        samples = int(self.sample_rate * ms / 1000)
        return samples * self.sample_width * self.channels

    def duration_ms(self, n_bytes: int) -> float:
        """Milliseconds of audio in ``n_bytes`` bytes of this format."""
        return n_bytes * 1000 / self.bytes_per_second

    def __str__(self) -> str:
        return f"{self.encoding}/{self.sample_rate}Hz/{self.channels}ch"


#: What Twilio Media Streams carries both ways: G.711 μ-law, 8 kHz, mono.
MULAW_8K = AudioFormat("mulaw", 8000)
PCM16_8K = AudioFormat("pcm16", 8000)
PCM16_16K = AudioFormat("pcm16", 16000)
PCM16_22K = AudioFormat("pcm16", 22050)
PCM16_24K = AudioFormat("pcm16", 24000)


def _ignore(*_args: object) -> None:
    return None


@attrs.frozen
class TranscriptionCallbacks:
    """What an STT session reports back to the host. All are plain functions, called on the
    event loop thread; they must not block.

    Attributes:
        on_partial: an interim transcript of the utterance in progress (full text so far, not a
            delta).
        on_transcript: a final transcript of one utterance (endpointing decided it ended).
        on_speech_start: the caller started speaking; drives barge-in.
        on_error: a vendor or session error (a :class:`~voicehost.errors.ProviderError` where
            the plugin can tell). The call goes on without STT after an unrecoverable one.
    """

    on_partial: Callable[[str], None] = _ignore
    on_transcript: Callable[[str], None] = _ignore
    on_speech_start: Callable[[], None] = _ignore
    on_error: Callable[[Exception], None] = _ignore


@attrs.frozen
class TranscriptionRequest:
    """Everything a provider needs to open one call's STT session.

    Attributes:
        config: the provider's config blob (resolved; see module docstring).
        callbacks: where results go.
        input_format: the format the host will feed to ``send_audio``; always one of the
            provider's ``input_formats``.
        call_sid: Twilio call SID (``CA…``), for logs and vendor metadata.
        stream_sid: Twilio stream SID (``MZ…``).
    """

    config: Mapping[str, Any]
    callbacks: TranscriptionCallbacks = attrs.field(factory=TranscriptionCallbacks)
    input_format: AudioFormat = MULAW_8K
    call_sid: str = ""
    stream_sid: str = ""


@attrs.frozen
class TranscriptionCapabilities:
    """What an STT provider can report, as LiveKit's ``STTCapabilities``.

    Attributes:
        interim_results: emits ``on_partial`` while the caller speaks.
        speech_events: emits ``on_speech_start`` (needed for barge-in).
    """

    interim_results: bool = True
    speech_events: bool = True


class TranscriptionSession(abc.ABC):
    """One call's streaming STT session.

    The host calls :meth:`connect` once, then :meth:`send_audio` for every inbound frame
    (20 ms, in ``request.input_format``), then :meth:`close` exactly once.
    """

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the vendor stream (or load the local model).

        Raises:
            ProviderAuthError: the vendor rejected the credentials (never retried).
            ProviderError: any other failure to connect. The host keeps the call up without STT.
        """

    @abc.abstractmethod
    def send_audio(self, audio: bytes) -> None:
        """Queue one chunk of caller audio. Never blocks and never raises on a dropped vendor:
        audio is buffered, and failures are reported through ``on_error``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and close the vendor stream. Idempotent."""

    @property
    @abc.abstractmethod
    def connected(self) -> bool:
        """True while the vendor stream is open and accepting audio."""


class Provider(abc.ABC):
    """What every provider kind shares: an id, a config blob with defaults, its start-up
    validation and an optional preload. :class:`TranscriptionProvider` and
    :class:`SpeechProvider` (and :class:`voicehost.responders.ResponderProvider`) add their
    kind's audio formats and per-call work.

    Class attributes:
        id: the provider id chosen with ``[stt|tts|responder] provider = "<id>"``.
        label: a human name for listings.
        default_config: the config blob's defaults; string values may hold ``${VAR}``.
    """

    id: ClassVar[str]
    label: ClassVar[str] = ""
    default_config: ClassVar[Mapping[str, Any]] = {}

    def is_configured(self, config: Mapping[str, Any]) -> bool:
        """True when ``config`` is complete enough to serve a call (e.g. has an API key)."""
        return True

    def validate_config(self, config: Mapping[str, Any]) -> None:
        """Check ``config`` at start-up.

        Raises:
            ConfigError: naming the key at fault. The default accepts anything.
        """
        return None

    def preload(self, config: Mapping[str, Any]) -> None:
        """Load models or warm connections for ``config`` before the first call.

        Blocking; the server calls it once at start-up, before it listens (never on a running
        event loop). The default does nothing.

        Raises:
            ConfigError: the config cannot be loaded.
            ProviderError: the model or vendor could not be prepared.
        """
        return None


class TranscriptionProvider(Provider):
    """A speech-to-text provider (the seed's ``RealtimeTranscriptionProviderPlugin``).

    Class attributes (besides :class:`Provider`'s ``id``, ``label``, ``default_config``):
        input_formats: formats ``send_audio`` accepts, preferred first. When μ-law 8 kHz is
            among them the host passes Twilio's bytes through untouched.
        capabilities: see :class:`TranscriptionCapabilities`.
    """

    input_formats: ClassVar[tuple[AudioFormat, ...]] = (MULAW_8K,)
    capabilities: ClassVar[TranscriptionCapabilities] = TranscriptionCapabilities()

    @abc.abstractmethod
    def create_session(self, request: TranscriptionRequest) -> TranscriptionSession:
        """Make (not yet connect) one call's session."""


class SpeechProvider(Provider):
    """A text-to-speech provider.

    Class attributes (besides :class:`Provider`'s ``id``, ``label``, ``default_config``):
        output_formats: formats :meth:`synthesize` may yield; which one a given config yields
            is :meth:`output_format`.
    """

    output_formats: ClassVar[tuple[AudioFormat, ...]] = (MULAW_8K,)

    def output_format(self, config: Mapping[str, Any]) -> AudioFormat:
        """The format :meth:`synthesize` yields for ``config``. Default: the first declared."""
        return self.output_formats[0]

    @abc.abstractmethod
    def synthesize(self, text: str, config: Mapping[str, Any]) -> AsyncIterator[bytes]:
        """Speak ``text``: an async iterator of raw audio chunks in ``output_format(config)``.

        Chunks may be any length (odd PCM byte counts included); the host re-frames them.
        Cancellable: ``aclose()`` on the iterator (or cancelling the task iterating it) must
        close the vendor request or socket at once.

        Raises (while iterating):
            ProviderError: the vendor refused or dropped the stream.
        """

    def synthesize_stream(
        self, text: AsyncIterable[str], config: Mapping[str, Any]
    ) -> AsyncIterator[bytes]:
        """Speak text that arrives in pieces (a responder streaming its reply).

        The default cuts the text into sentences and calls :meth:`synthesize` per sentence,
        so the first sentence is heard before the reply is complete. Providers with a native
        text-streaming input (ElevenLabs ``stream-input``) override it.
        """

        async def run() -> AsyncIterator[bytes]:
            async for sentence in sentences(text):
                stream = self.synthesize(sentence, config)
                try:
                    async for chunk in stream:
                        yield chunk
                finally:
                    await stream.aclose()  # type: ignore[attr-defined]

        return run()
