"""The base class of cloud streaming STT providers. See :mod:`voicehost.stt_stream`."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

from voicehost.contracts import (
    MULAW_8K,
    AudioFormat,
    TranscriptionCapabilities,
    TranscriptionProvider,
    TranscriptionRequest,
    TranscriptionSession,
)
from voicehost.errors import ConfigError
from voicehost.provider_config import is_set

__all__ = ["StreamingTranscriptionProvider"]

ConfigT = TypeVar("ConfigT")


class StreamingTranscriptionProvider(TranscriptionProvider, Generic[ConfigT]):
    """A :class:`~voicehost.contracts.TranscriptionProvider` for a cloud vendor reached over
    one WebSocket per call, keyed by an ``api_key`` in its config blob.

    Subclasses set the contract's class attributes (``id``, ``label``, ``default_config``;
    ``input_formats`` defaults to μ-law 8 kHz only, passed through untouched) and implement
    :meth:`parse_config` (the blob → a validated, frozen settings object) and
    :meth:`open_session`. This class gives them the common rest: ``is_configured`` (a usable
    ``api_key``), ``validate_config`` (parsing) and ``create_session`` (input format check,
    parse, :meth:`open_session`).
    """

    input_formats: ClassVar[tuple[AudioFormat, ...]] = (MULAW_8K,)
    capabilities: ClassVar[TranscriptionCapabilities] = TranscriptionCapabilities(
        interim_results=True, speech_events=True
    )

    @abc.abstractmethod
    def parse_config(self, config: Mapping[str, Any]) -> ConfigT:
        """The validated settings of a config blob.

        Raises:
            ConfigError: naming the ``[stt.<id>]`` key at fault.
        """

    @abc.abstractmethod
    def open_session(self, request: TranscriptionRequest, config: ConfigT) -> TranscriptionSession:
        """Make (not yet connect) one call's session from its parsed config."""

    def is_configured(self, config: Mapping[str, Any]) -> bool:
        """True when the blob has a non-empty, resolved ``api_key``."""
        return is_set(config, "api_key")

    def validate_config(self, config: Mapping[str, Any]) -> None:
        """Parse the blob (:meth:`parse_config`); raises ConfigError naming the key at fault."""
        self.parse_config(config)

    def create_session(self, request: TranscriptionRequest) -> TranscriptionSession:
        """A not yet connected session for one call.

        Raises:
            ConfigError: the blob is invalid, or ``request.input_format`` is not one of
                :attr:`input_formats`.
        """
        if request.input_format not in self.input_formats:
            raise ConfigError(
                f"the {self.id} STT provider takes {self.input_formats[0]} audio,"
                f" not {request.input_format}"
            )
        return self.open_session(request, self.parse_config(request.config))
