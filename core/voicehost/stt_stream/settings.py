"""The config keys every streaming STT provider shares. See :mod:`voicehost.stt_stream`."""

from __future__ import annotations

from typing import TypeVar

from pydantic import Field, field_validator

from voicehost.config_model import ProviderConfig

__all__ = ["StreamingConfig", "StreamingConfigT"]


class StreamingConfig(ProviderConfig):
    """Base config class of a cloud streaming STT provider: its API key and the resilience
    knobs of :class:`~voicehost.stt_stream.StreamingTranscriptionSession`.

    A plugin subclasses it with its vendor's keys (``model``, ``base_url`` …) and overrides
    ``api_key`` with its environment variable (``env_field("DEEPGRAM_API_KEY")``); a vendor
    that needs a keep-alive overrides ``keepalive_interval_s``'s default (Deepgram closes a
    socket idle for about 10 s, so its default is 5 s).

    ``api_key`` given in the table (or through its variable) must not be blank; left out and
    built directly (``MyConfig()``, tests) it is ``""``, which
    :meth:`~voicehost.stt_stream.StreamingTranscriptionProvider.is_configured` refuses.
    """

    api_key: str = Field("", repr=False, description="The vendor API key.")
    reconnect_attempts: int = Field(
        5,
        ge=0,
        description="Tries after a dropped socket before giving up (0: never reconnect); the "
        "first connect gets as many.",
    )
    reconnect_base_delay_s: float = Field(
        1.0, ge=0, description="Wait before the first retry, s; doubled for each next try."
    )
    reconnect_max_delay_s: float = Field(8.0, ge=0, description="Cap of one retry wait, s.")
    reconnect_buffer_ms: int = Field(
        2000,
        ge=20,
        description="Most caller audio kept while the socket is down, ms; the oldest is dropped.",
    )
    connect_timeout_s: float = Field(
        10.0, gt=0, description="Bound of one connect (upgrade and session set-up), s."
    )
    send_timeout_s: float = Field(5.0, gt=0, description="Bound of every single vendor send, s.")
    close_timeout_s: float = Field(
        3.0, gt=0, description="Bound of the whole close sequence (flush, finalize), s."
    )
    keepalive_interval_s: float = Field(
        0.0, ge=0, description="Send a keep-alive after this long without a send, s (0: none)."
    )

    @field_validator("api_key")
    @classmethod
    def _api_key_not_blank(cls, value: str) -> str:
        """A key given as ``""`` (an empty variable) is a config error naming the key."""
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    def backoff_s(self, attempt: int) -> float:
        """Seconds to wait before reconnect try ``attempt`` (1-based): base × 2^(attempt−1),
        capped at ``reconnect_max_delay_s``."""
        return min(self.reconnect_base_delay_s * 2 ** (attempt - 1), self.reconnect_max_delay_s)


#: A plugin's config class, for the generic streaming provider and session.
StreamingConfigT = TypeVar("StreamingConfigT", bound=StreamingConfig)
