"""Reading a provider's config blob: typed getters whose errors name the table and the key.

A provider's config blob is its ``[stt.<id>]`` / ``[tts.<id>]`` table of ``plugins.toml``
merged over its ``default_config`` (see :mod:`voicehost.contracts`). Plugins parse it into a
frozen settings object at start-up (``validate_config``) and per call; this module is the one
place that says how a string, a number, a flag or a URL is checked, so every plugin rejects
bad values the same way, with a :class:`~voicehost.errors.ConfigError` such as
``[tts.openai] speed must be between 0.25 and 4.0, not 9``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs

from voicehost.errors import ConfigError

__all__ = ["ConfigBlob", "check_known_keys", "is_set", "websocket_url"]


def check_known_keys(config: Mapping[str, Any], known: Mapping[str, Any], where: str) -> None:
    """Reject keys that ``known`` (a defaults table) does not have: a typo must not fall back
    to a default silently.

    Raises:
        ConfigError: ``"<where> has unknown key(s) a, b; known: …"``.
    """
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise ConfigError(
            f"{where} has unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )


def is_set(config: Mapping[str, Any], key: str = "api_key") -> bool:
    """True when ``config[key]`` is a non-blank string with no unresolved ``${VAR}`` left in
    it: what a cloud provider's ``is_configured`` checks of its ``api_key`` (and the like)."""
    value = config.get(key)
    return isinstance(value, str) and bool(value.strip()) and "${" not in value


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


@attrs.frozen
class ConfigBlob:
    """One provider's config blob with its defaults, read key by key.

    A key missing from ``config`` takes its value from ``defaults``. Every getter raises
    :class:`~voicehost.errors.ConfigError` whose message starts with ``where`` and the key
    (``"[stt.deepgram] endpointing must be …, not -1"``).

    Attributes:
        config: the blob (resolved; ``${VAR}`` already substituted by the host).
        defaults: the provider's ``default_config``; also the set of known keys.
        where: the table, for messages: ``"[tts.openai]"``.
    """

    config: Mapping[str, Any]
    defaults: Mapping[str, Any]
    where: str

    def check_known(self) -> None:
        """Reject keys that are not in ``defaults`` (see :func:`check_known_keys`)."""
        check_known_keys(self.config, self.defaults, self.where)

    def get(self, key: str) -> Any:
        """The raw value of ``key`` (its default when missing; None when neither has it)."""
        return self.config.get(key, self.defaults.get(key))

    def fail(self, key: str, problem: str) -> ConfigError:
        """The error for ``key``: ``"<where> <key> <problem>"`` (to raise)."""
        return ConfigError(f"{self.where} {key} {problem}")

    def string(self, key: str, *, required: bool = False, strip: bool = True) -> str:
        """A string (None reads as ``""``), stripped of surrounding spaces unless ``strip``
        is false.

        Raises:
            ConfigError: not a string, or blank while ``required``.
        """
        value = self.get(key)
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, not {value!r}")
        if required and not value.strip():
            raise self.fail(key, "must not be empty")
        return value.strip() if strip else value

    def boolean(self, key: str) -> bool:
        """``true`` or ``false``.

        Raises:
            ConfigError: anything else (``"yes"``, 1 …).
        """
        value = self.get(key)
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, not {value!r}")
        return value

    def number(
        self, key: str, *, minimum: float | None = None, maximum: float | None = None
    ) -> float:
        """An int or float (never a bool) within ``minimum`` … ``maximum`` (inclusive).

        Raises:
            ConfigError: not a number, or out of range (the message gives the range).
        """
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"must be a number, not {value!r}")
        _check_range(self, key, value, minimum, maximum)
        return float(value)

    def integer(self, key: str, *, minimum: int | None = 0, maximum: int | None = None) -> int:
        """A whole number (never a bool) within ``minimum`` … ``maximum`` (inclusive).

        Raises:
            ConfigError: not a whole number, or out of range.
        """
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be a whole number, not {value!r}")
        _check_range(self, key, value, minimum, maximum)
        return value

    def http_url(self, key: str = "base_url") -> str:
        """An absolute ``http://`` or ``https://`` URL, without a trailing ``/``.

        Raises:
            ConfigError: blank, or another scheme, or no host.
        """
        value = self.string(key, required=True).rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self.fail(key, f"must be an http(s):// URL, not {value!r}")
        return value


def _check_range(
    blob: ConfigBlob, key: str, value: float, minimum: float | None, maximum: float | None
) -> None:
    low_ok = minimum is None or value >= minimum
    high_ok = maximum is None or value <= maximum
    if low_ok and high_ok:
        return
    if minimum is not None and maximum is not None:
        raise blob.fail(key, f"must be between {minimum} and {maximum}, not {value!r}")
    if minimum is not None:
        raise blob.fail(key, f"must be at least {minimum}, not {value!r}")
    raise blob.fail(key, f"must be at most {maximum}, not {value!r}")
