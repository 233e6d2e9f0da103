"""The ``[tts.openai]`` config blob: defaults, parsing and start-up validation.

Keys (all optional in ``plugins.toml``; the defaults below fill the rest):

=================  ==========================  ==============================================
key                default                     meaning
=================  ==========================  ==============================================
``api_key``        ``"${OPENAI_API_KEY}"``     Bearer key; the host resolves the variable at
                                               start-up (unset → ``ConfigError`` naming it).
``model``          ``"gpt-4o-mini-tts"``       ``tts-1``, ``tts-1-hd``, ``gpt-4o-mini-tts`` …
``voice``          ``"coral"``                 a built-in voice name, or a custom voice id
                                               (``"voice_…"``, sent as ``{"id": …}``).
``instructions``   ``""``                      tone/style prompt; not for ``tts-1*`` models.
``speed``          ``1.0``                     0.25 – 4.0.
``base_url``       ``"https://api.openai.com/v1"``  the API origin as the ``openai`` SDK takes
                                               it (tests and proxies set only this).
``timeout``        ``30.0``                    seconds for connect and for each read.
``max_retries``    ``0``                       SDK retries of 408/409/429/5xx before any audio;
                                               0 because a caller waiting through back-off is
                                               worse than the host skipping the reply.
=================  ==========================  ==============================================

Protocol: ``POST /v1/audio/speech`` (wire-protocols.md §3.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs
from voicehost.errors import ConfigError

#: ``input`` is limited to 4096 characters a request by the vendor.
MAX_INPUT_CHARS = 4096
SPEED_RANGE = (0.25, 4.0)
#: Models that reject ``instructions``.
MODELS_WITHOUT_INSTRUCTIONS = frozenset({"tts-1", "tts-1-hd"})

DEFAULT_CONFIG: Mapping[str, Any] = {
    "api_key": "${OPENAI_API_KEY}",
    "model": "gpt-4o-mini-tts",
    "voice": "coral",
    "instructions": "",
    "speed": 1.0,
    "base_url": "https://api.openai.com/v1",
    "timeout": 30.0,
    "max_retries": 0,
}

_WHERE = "[tts.openai]"


@attrs.frozen
class OpenAITTSSettings:
    """The validated config blob.

    Attributes:
        api_key: the Bearer key.
        model: TTS model id.
        voice: voice name or custom voice id.
        instructions: style prompt, ``""`` for none (then not sent).
        speed: playback speed factor, 0.25 – 4.0.
        base_url: API origin including ``/v1``.
        timeout: seconds, > 0.
        max_retries: SDK retries, ≥ 0.
    """

    api_key: str
    model: str
    voice: str
    instructions: str
    speed: float
    base_url: str
    timeout: float
    max_retries: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OpenAITTSSettings:
        """Parse ``config`` (merged over :data:`DEFAULT_CONFIG` for missing keys).

        Raises:
            ConfigError: naming the key at fault and what it should be.
        """
        merged = {**DEFAULT_CONFIG, **config}
        unknown = sorted(set(merged) - set(DEFAULT_CONFIG))
        if unknown:
            raise ConfigError(f"{_WHERE}: unknown key(s) {', '.join(unknown)}")
        settings = cls(
            api_key=_text(merged, "api_key"),
            model=_text(merged, "model"),
            voice=_text(merged, "voice"),
            instructions=_text(merged, "instructions", allow_empty=True),
            speed=_number(merged, "speed", *SPEED_RANGE),
            base_url=_http_url(merged, "base_url"),
            timeout=_number(merged, "timeout", 0.001, 3600.0),
            max_retries=_count(merged, "max_retries"),
        )
        if settings.instructions and settings.model in MODELS_WITHOUT_INSTRUCTIONS:
            raise ConfigError(
                f"{_WHERE}: instructions are not supported by model {settings.model!r}; "
                "use gpt-4o-mini-tts or leave instructions empty"
            )
        return settings


def _text(config: Mapping[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = config[key]
    if not isinstance(value, str):
        raise ConfigError(f"{_WHERE}: {key} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise ConfigError(f"{_WHERE}: {key} must not be empty")
    return value


def _number(config: Mapping[str, Any], key: str, low: float, high: float) -> float:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{_WHERE}: {key} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{_WHERE}: {key} must be between {low} and {high}, got {value}")
    return float(value)


def _count(config: Mapping[str, Any], key: str) -> int:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{_WHERE}: {key} must be a whole number ≥ 0, got {value!r}")
    return value


def _http_url(config: Mapping[str, Any], key: str) -> str:
    value = _text(config, key)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{_WHERE}: {key} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")
