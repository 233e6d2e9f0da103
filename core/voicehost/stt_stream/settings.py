"""Settings of a streaming STT session, read from a provider's config blob.
See :mod:`voicehost.stt_stream`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from voicehost.provider_config import ConfigBlob

__all__ = ["STREAM_DEFAULTS", "StreamSettings"]


@attrs.frozen
class StreamSettings:
    """Resilience settings of one streaming STT session.

    Attributes:
        reconnect_attempts: tries after a dropped socket before giving up (0 disables
            reconnecting); the first ``connect()`` gets the same number of tries.
        reconnect_base_delay_s: wait before the first retry, in s; doubled for each next try.
        reconnect_max_delay_s: cap of one wait, in s.
        reconnect_buffer_ms: most audio, in ms of the input format, kept while the socket is
            down; the oldest is dropped beyond it.
        connect_timeout_s: bound of one connect (upgrade plus the vendor's session set-up), in s.
        send_timeout_s: bound of every single vendor send, in s.
        close_timeout_s: bound of the whole close sequence (flush, vendor finalize), in s.
        keepalive_interval_s: send a keep-alive after this long without any send, in s; None
            for vendors that need none.
    """

    reconnect_attempts: int = 5
    reconnect_base_delay_s: float = 1.0
    reconnect_max_delay_s: float = 8.0
    reconnect_buffer_ms: int = 2000
    connect_timeout_s: float = 10.0
    send_timeout_s: float = 5.0
    close_timeout_s: float = 3.0
    keepalive_interval_s: float | None = None

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], *, where: str, keepalive: bool = False
    ) -> StreamSettings:
        """Read the knobs of :data:`STREAM_DEFAULTS` (and ``keepalive_interval_s`` when
        ``keepalive``) from a provider's config blob; missing keys take the defaults.

        Args:
            config: the provider's config blob.
            where: the table for messages, e.g. ``"[stt.deepgram]"``.
            keepalive: read ``keepalive_interval_s`` (default 5 s; 0 disables).

        Raises:
            ConfigError: a knob that is not a number or is out of range, named with ``where``.
        """
        blob = ConfigBlob(config, _KNOB_DEFAULTS, where)
        keepalive_s: float | None = None
        if keepalive:  # 0 turns it off
            keepalive_s = blob.number("keepalive_interval_s", minimum=0) or None
        return cls(
            reconnect_attempts=blob.integer("reconnect_attempts", minimum=0),
            reconnect_base_delay_s=blob.number("reconnect_base_delay_s", minimum=0),
            reconnect_max_delay_s=blob.number("reconnect_max_delay_s", minimum=0),
            reconnect_buffer_ms=int(blob.number("reconnect_buffer_ms", minimum=20)),
            connect_timeout_s=blob.number("connect_timeout_s", minimum=0.001),
            send_timeout_s=blob.number("send_timeout_s", minimum=0.001),
            close_timeout_s=blob.number("close_timeout_s", minimum=0.001),
            keepalive_interval_s=keepalive_s,
        )

    def backoff_s(self, attempt: int) -> float:
        """Seconds to wait before reconnect try ``attempt`` (1-based): base × 2^(attempt−1),
        capped at ``reconnect_max_delay_s``."""
        return min(self.reconnect_base_delay_s * 2 ** (attempt - 1), self.reconnect_max_delay_s)


#: The knobs plugins put in their ``default_config`` (the :class:`StreamSettings` defaults,
#: without ``keepalive_interval_s``, which only vendors that need a keep-alive declare).
STREAM_DEFAULTS: Final[Mapping[str, Any]] = {
    field.name: field.default
    for field in attrs.fields(StreamSettings)
    if field.name != "keepalive_interval_s"
}
_KNOB_DEFAULTS: Final[Mapping[str, Any]] = {**STREAM_DEFAULTS, "keepalive_interval_s": 5.0}
