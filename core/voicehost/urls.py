"""URL helpers for provider plugins."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["http_url", "websocket_url"]

_WS_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


def http_url(value: str) -> str:
    """``value`` checked to be an absolute ``http://`` or ``https://`` URL, without a trailing
    ``/``; for a config class's ``field_validator`` of a vendor origin.

    Raises:
        ValueError: another scheme, or no host.
    """
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s):// URL, not {value!r}")
    return value


def websocket_url(base_url: str) -> str:
    """The WebSocket origin for an HTTP(S) vendor origin: ``http``→``ws``, ``https``→``wss``
    (``ws``/``wss`` pass through); path and query are kept, a trailing ``/`` is dropped.

    Raises:
        ValueError: not an absolute http(s)/ws(s) URL.
    """
    parts = urlsplit(base_url)
    scheme = _WS_SCHEMES.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"must be an absolute http(s):// or ws(s):// URL, not {base_url!r}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), parts.query, ""))
