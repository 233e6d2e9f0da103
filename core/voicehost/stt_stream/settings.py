"""Settings of a streaming STT session, read from a provider's config blob, and the
WebSocket URL derived from a vendor's HTTP origin. See :mod:`voicehost.stt_stream`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import attrs

from voicehost.errors import ConfigError

__all__ = ["STREAM_DEFAULTS", "StreamSettings", "websocket_url"]

STREAM_DEFAULTS: Final[Mapping[str, Any]] = {
    "reconnect_attempts": 5,
    "reconnect_base_delay_s": 1.0,
    "reconnect_max_delay_s": 8.0,
    "reconnect_buffer_ms": 2000,
    "connect_timeout_s": 10.0,
    "send_timeout_s": 5.0,
    "close_timeout_s": 3.0,
}


def _number(
    config: Mapping[str, Any], key: str, default: float, where: str, *, minimum: float
) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} {key} must be a number, not {value!r}")
    if value < minimum:
        raise ConfigError(f"{where} {key} must be at least {minimum}, not {value!r}")
    return float(value)


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
        attempts = config.get("reconnect_attempts", 5)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise ConfigError(
                f"{where} reconnect_attempts must be an integer ≥ 0, not {attempts!r}"
            )
        keepalive_s: float | None = None
        if keepalive:
            keepalive_s = _number(config, "keepalive_interval_s", 5.0, where, minimum=0) or None
        return cls(
            reconnect_attempts=attempts,
            reconnect_base_delay_s=_number(config, "reconnect_base_delay_s", 1.0, where, minimum=0),
            reconnect_max_delay_s=_number(config, "reconnect_max_delay_s", 8.0, where, minimum=0),
            reconnect_buffer_ms=int(
                _number(config, "reconnect_buffer_ms", 2000, where, minimum=20)
            ),
            connect_timeout_s=_number(config, "connect_timeout_s", 10.0, where, minimum=0.001),
            send_timeout_s=_number(config, "send_timeout_s", 5.0, where, minimum=0.001),
            close_timeout_s=_number(config, "close_timeout_s", 3.0, where, minimum=0.001),
            keepalive_interval_s=keepalive_s,
        )

    def backoff_s(self, attempt: int) -> float:
        """Seconds to wait before reconnect try ``attempt`` (1-based): base × 2^(attempt−1),
        capped at ``reconnect_max_delay_s``."""
        return min(self.reconnect_base_delay_s * 2 ** (attempt - 1), self.reconnect_max_delay_s)


def websocket_url(base_url: str, *, where: str, key: str = "base_url") -> str:
    """The WebSocket origin for an HTTP(S) vendor origin: ``http``→``ws``, ``https``→``wss``
    (``ws``/``wss`` pass through); path and query are kept, a trailing ``/`` is dropped.

    Raises:
        ConfigError: not an absolute http(s)/ws(s) URL; names ``where`` and ``key``.
    """
    if not isinstance(base_url, str):
        raise ConfigError(f"{where} {key} must be a URL string, not {base_url!r}")
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ConfigError(
            f"{where} {key} must be an absolute http(s):// or ws(s):// URL, not {base_url!r}"
        )
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), parts.query, ""))
