"""The contracts between the host and its provider plugins.

They mirror the seed plugin SDK (``RealtimeTranscriptionProviderPlugin``, ``createSession``
with a ``providerConfig`` blob, ``onPartial/onTranscript/onSpeechStart/onError``) in Python
spelling, and LiveKit's ``STTCapabilities`` for capability flags.

A provider is a long-lived object registered once per process through a pluggy hook
(:mod:`voicehost.hookspecs`). Per call, the host asks it for a session (STT) or a stream of
audio (TTS), always handing over the provider's *config*: its ``[stt.<id>]`` /
``[tts.<id>]`` table of ``plugins.toml``, ``${VAR}`` references resolved, parsed once at
start-up into the provider's ``config_class`` (see :mod:`voicehost.config_model`).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import ClassVar, Generic, TypeVar

import attrs

from voicehost.config_model import ProviderConfig
from voicehost.contracts.formats import MULAW_8K, AudioFormat
from voicehost.text import sentences

#: A provider's parsed config type (its ``config_class``).
ConfigT = TypeVar("ConfigT", bound=ProviderConfig)


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
        on_speech_end: optional: the caller stopped speaking and the utterance's final
            transcript follows (call it before that ``on_transcript``). Its argument, when
            given, is how long ago the speech ended, s (the silence the endpointing waited
            for; ``0.0``: just now). The host times turns from it (end of speech → final
            transcript → first bot audio); a provider that never calls it leaves the host to
            time them from the final's arrival. Added after the first version: a plugin
            that must run on older hosts looks it up with ``getattr(callbacks,
            "on_speech_end", None)``.
        on_provisional: optional: the utterance's final transcript as it will be if the
            caller stays silent, known before the endpoint (Whisper's decode started early in
            the pause). ``on_transcript`` (normally with the same text) or
            ``on_speech_start`` (the caller went on) follows. The host may start preparing
            a reply on it (preemptive generation); nothing is said until the final. Look it
            up with ``getattr(callbacks, "on_provisional", None)`` to run on older hosts.
    """

    on_partial: Callable[[str], None] = _ignore
    on_transcript: Callable[[str], None] = _ignore
    on_speech_start: Callable[[], None] = _ignore
    on_error: Callable[[Exception], None] = _ignore
    on_speech_end: Callable[..., None] = _ignore
    on_provisional: Callable[[str], None] = _ignore


@attrs.frozen
class TranscriptionRequest:
    """Everything a provider needs to open one call's STT session.

    Attributes:
        config: the provider's parsed config (its ``config_class``; see module docstring).
        callbacks: where results go.
        input_format: the format the host will feed to ``send_audio``; always one of the
            provider's ``input_formats``.
        call_sid: Twilio call SID (``CA…``), for logs and vendor metadata.
        stream_sid: Twilio stream SID (``MZ…``).
    """

    config: ProviderConfig
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


class Provider(abc.ABC, Generic[ConfigT]):
    """What every provider kind shares: an id, a typed config class, an "is it configured"
    check and an optional preload. :class:`TranscriptionProvider`, :class:`SpeechProvider` and
    :class:`~voicehost.contracts.responders.ResponderProvider` add their kind's per-call work.

    Class attributes:
        id: the provider id chosen with ``[stt|tts|responder] provider = "<id>"``.
        label: a human name for listings.
        config_class: the :class:`~voicehost.config_model.ProviderConfig` subclass its
            ``[<kind>.<id>]`` table is parsed into, once, at start-up (types, defaults,
            ranges and a doc per key; unknown keys refused). Every method below receives
            that parsed, frozen object as ``config``.
    """

    id: ClassVar[str]
    label: ClassVar[str] = ""
    config_class: ClassVar[type[ProviderConfig]] = ProviderConfig

    def is_configured(self, config: ConfigT) -> bool:
        """True when ``config`` is complete enough to serve a call (e.g. has an API key)."""
        return True

    def preload(self, config: ConfigT) -> None:
        """Load models or warm connections for ``config`` before the first call.

        Blocking; the server calls it once at start-up, before it listens (never on a running
        event loop). The default does nothing.

        Raises:
            ConfigError: the config cannot be loaded.
            ProviderError: the model or vendor could not be prepared.
        """
        return None


class TranscriptionProvider(Provider[ConfigT]):
    """A speech-to-text provider (the seed's ``RealtimeTranscriptionProviderPlugin``).

    Class attributes (besides :class:`Provider`'s ``id``, ``label``, ``config_class``):
        input_formats: formats ``send_audio`` accepts, preferred first. When μ-law 8 kHz is
            among them the host passes Twilio's bytes through untouched.
        capabilities: see :class:`TranscriptionCapabilities`.
    """

    input_formats: ClassVar[tuple[AudioFormat, ...]] = (MULAW_8K,)
    capabilities: ClassVar[TranscriptionCapabilities] = TranscriptionCapabilities()

    @abc.abstractmethod
    def create_session(self, request: TranscriptionRequest) -> TranscriptionSession:
        """Make (not yet connect) one call's session."""


class SpeechProvider(Provider[ConfigT]):
    """A text-to-speech provider.

    Class attributes (besides :class:`Provider`'s ``id``, ``label``, ``config_class``):
        output_formats: formats :meth:`synthesize` may yield; which one a given config yields
            is :meth:`output_format`.
    """

    output_formats: ClassVar[tuple[AudioFormat, ...]] = (MULAW_8K,)

    def output_format(self, config: ConfigT) -> AudioFormat:
        """The format :meth:`synthesize` yields for ``config``. Default: the first declared."""
        return self.output_formats[0]

    @abc.abstractmethod
    def synthesize(self, text: str, config: ConfigT) -> AsyncIterator[bytes]:
        """Speak ``text``: an async iterator of raw audio chunks in ``output_format(config)``.

        Chunks may be any length (odd PCM byte counts included); the host re-frames them.
        Cancellable: ``aclose()`` on the iterator (or cancelling the task iterating it) must
        close the vendor request or socket at once.

        Raises (while iterating):
            ProviderError: the vendor refused or dropped the stream.
        """

    def synthesize_stream(self, text: AsyncIterable[str], config: ConfigT) -> AsyncIterator[bytes]:
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
