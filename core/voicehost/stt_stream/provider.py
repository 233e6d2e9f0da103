"""The base class of cloud streaming STT providers. See :mod:`voicehost.stt_stream`."""

from __future__ import annotations

import abc
from typing import ClassVar

from voicehost.contracts import (
    MULAW_8K,
    AudioFormat,
    TranscriptionCapabilities,
    TranscriptionProvider,
    TranscriptionRequest,
    TranscriptionSession,
)
from voicehost.errors import ConfigError
from voicehost.stt_stream.settings import StreamingConfig, StreamingConfigT

__all__ = ["StreamingTranscriptionProvider"]


class StreamingTranscriptionProvider(TranscriptionProvider[StreamingConfigT]):
    """A :class:`~voicehost.contracts.TranscriptionProvider` for a cloud vendor reached over
    one WebSocket per call, keyed by an ``api_key``.

    Subclasses set the contract's class attributes (``id``, ``label``, ``config_class``: a
    :class:`~voicehost.stt_stream.StreamingConfig` subclass with the vendor's keys;
    ``input_formats`` defaults to μ-law 8 kHz only, passed through untouched) and implement
    :meth:`open_session`. The host parses the ``[stt.<id>]`` table into ``config_class`` once,
    at start-up, and every call's request carries that object as ``request.config``; this
    class gives the plugin the common rest: :meth:`is_configured` (a usable ``api_key``) and
    :meth:`create_session` (the input-format check, then :meth:`open_session`).

    Vendor SDKs are imported lazily: in :meth:`preload` or the first :meth:`open_session`,
    never when the plugin module is imported (``voicehost list-plugins`` stays fast).
    """

    config_class: ClassVar[type[StreamingConfig]] = StreamingConfig
    input_formats: ClassVar[tuple[AudioFormat, ...]] = (MULAW_8K,)
    capabilities: ClassVar[TranscriptionCapabilities] = TranscriptionCapabilities(
        interim_results=True, speech_events=True
    )

    @abc.abstractmethod
    def open_session(
        self, request: TranscriptionRequest, config: StreamingConfigT
    ) -> TranscriptionSession:
        """Make (not yet connect) one call's session from the parsed ``config``
        (``request.config``, checked to be a :attr:`config_class`)."""

    def is_configured(self, config: StreamingConfigT) -> bool:
        """True when ``config.api_key`` is non-blank with no unresolved ``${VAR}`` left in it."""
        key = config.api_key
        return bool(key.strip()) and "${" not in key

    def create_session(self, request: TranscriptionRequest) -> TranscriptionSession:
        """A not yet connected session for one call, from ``request.config`` as parsed at
        start-up (nothing is re-validated here).

        Raises:
            ConfigError: ``request.input_format`` is not one of :attr:`input_formats`.
            TypeError: ``request.config`` is not a :attr:`config_class` (a raw table, or
                another provider's config: a programming error).
        """
        if request.input_format not in self.input_formats:
            raise ConfigError(
                f"the {self.id} STT provider takes {self.input_formats[0]} audio,"
                f" not {request.input_format}"
            )
        config = request.config
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"the {self.id} STT provider needs a {self.config_class.__name__} as"
                f" request.config, not {type(config).__name__}"
            )
        return self.open_session(request, config)  # type: ignore[arg-type]
