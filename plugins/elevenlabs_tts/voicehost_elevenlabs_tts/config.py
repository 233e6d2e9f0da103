"""The ``[tts.elevenlabs]`` config blob: defaults, parsing and start-up validation.

===========================  ============================  =======================================
key                          default                       meaning
===========================  ============================  =======================================
``api_key``                  ``"${ELEVENLABS_API_KEY}"``   sent as ``xi-api-key``; the host resolves
                                                           the variable at start-up.
``voice_id``                 ``""`` (required)             the voice to speak with.
``model_id``                 ``"eleven_flash_v2_5"``       TTS model (~75 ms latency).
``voice_settings``           ``{}``                        ``stability``, ``similarity_boost``,
                                                           ``style`` (0 – 1), ``speed`` (0.7 – 1.2),
                                                           ``use_speaker_boost`` (bool); empty =
                                                           the voice's stored settings.
``optimize_streaming_latency``  ``0``                      0 – 4 (HTTP query parameter; 0 is the
                                                           vendor default and is not sent).
``mode``                     ``"http"``                    ``"http"``: ``POST …/stream`` per reply;
                                                           ``"websocket"``: ``stream-input``, text
                                                           spoken as it arrives.
``chunk_length_schedule``    ``[50]``                      websocket mode: characters buffered
                                                           before each generation (50 – 500 each).
``base_url``                 ``"https://api.elevenlabs.io"``  API origin as the SDK takes it; the
                                                           WebSocket URL is derived (http→ws,
                                                           https→wss).
``timeout``                  ``30.0``                      seconds for connect and each read.
===========================  ============================  =======================================

Audio is always requested as ``output_format = "ulaw_8000"``: Twilio's own format, so the
bytes go into the call without conversion (wire-protocols.md §5).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs
from voicehost.errors import ConfigError

OUTPUT_FORMAT = "ulaw_8000"
Mode = Literal["http", "websocket"]
MODES: tuple[Mode, ...] = ("http", "websocket")

#: voice_settings keys and their documented ranges (``None`` = boolean).
VOICE_SETTING_RANGES: Mapping[str, tuple[float, float] | None] = {
    "stability": (0.0, 1.0),
    "similarity_boost": (0.0, 1.0),
    "style": (0.0, 1.0),
    "speed": (0.7, 1.2),
    "use_speaker_boost": None,
}

DEFAULT_CONFIG: Mapping[str, Any] = {
    "api_key": "${ELEVENLABS_API_KEY}",
    "voice_id": "",
    "model_id": "eleven_flash_v2_5",
    "voice_settings": {},
    "optimize_streaming_latency": 0,
    "mode": "http",
    "chunk_length_schedule": [50],
    "base_url": "https://api.elevenlabs.io",
    "timeout": 30.0,
}

_WHERE = "[tts.elevenlabs]"


@attrs.frozen
class ElevenLabsSettings:
    """The validated config blob (see the module docstring for each key)."""

    api_key: str
    voice_id: str
    model_id: str
    voice_settings: Mapping[str, float | bool]
    optimize_streaming_latency: int
    mode: Mode
    chunk_length_schedule: tuple[int, ...]
    base_url: str
    timeout: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ElevenLabsSettings:
        """Parse ``config`` (merged over :data:`DEFAULT_CONFIG` for missing keys).

        Raises:
            ConfigError: naming the key at fault and what it should be.
        """
        merged = {**DEFAULT_CONFIG, **config}
        unknown = sorted(set(merged) - set(DEFAULT_CONFIG))
        if unknown:
            raise ConfigError(f"{_WHERE}: unknown key(s) {', '.join(unknown)}")
        mode = merged["mode"]
        if mode not in MODES:
            raise ConfigError(f"{_WHERE}: mode must be 'http' or 'websocket', got {mode!r}")
        voice_id = _text(merged, "voice_id", allow_empty=True)
        if not voice_id.strip():
            raise ConfigError(
                f"{_WHERE}: voice_id is required (an ElevenLabs voice id, e.g. from GET /v1/voices)"
            )
        if "/" in voice_id or voice_id != voice_id.strip():
            raise ConfigError(f"{_WHERE}: voice_id {voice_id!r} is not a voice id")
        latency = merged["optimize_streaming_latency"]
        if isinstance(latency, bool) or not isinstance(latency, int) or not 0 <= latency <= 4:
            raise ConfigError(
                f"{_WHERE}: optimize_streaming_latency must be a whole number 0-4, got {latency!r}"
            )
        timeout = merged["timeout"]
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError(f"{_WHERE}: timeout must be a number of seconds > 0, got {timeout!r}")
        return cls(
            api_key=_text(merged, "api_key"),
            voice_id=voice_id,
            model_id=_text(merged, "model_id"),
            voice_settings=_voice_settings(merged["voice_settings"]),
            optimize_streaming_latency=latency,
            mode=mode,
            chunk_length_schedule=_schedule(merged["chunk_length_schedule"]),
            base_url=_http_url(merged, "base_url"),
            timeout=float(timeout),
        )


def _text(config: Mapping[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = config[key]
    if not isinstance(value, str):
        raise ConfigError(f"{_WHERE}: {key} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise ConfigError(f"{_WHERE}: {key} must not be empty")
    return value


def _voice_settings(value: Any) -> Mapping[str, float | bool]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{_WHERE}: voice_settings must be a table, got {value!r}")
    out: dict[str, float | bool] = {}
    for key, item in value.items():
        if key not in VOICE_SETTING_RANGES:
            known = ", ".join(VOICE_SETTING_RANGES)
            raise ConfigError(f"{_WHERE}: unknown voice_settings.{key} (known: {known})")
        bounds = VOICE_SETTING_RANGES[key]
        if bounds is None:
            if not isinstance(item, bool):
                raise ConfigError(f"{_WHERE}: voice_settings.{key} must be true or false")
            out[key] = item
            continue
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise ConfigError(f"{_WHERE}: voice_settings.{key} must be a number, got {item!r}")
        if not bounds[0] <= item <= bounds[1]:
            raise ConfigError(
                f"{_WHERE}: voice_settings.{key} must be between {bounds[0]} and {bounds[1]}, "
                f"got {item}"
            )
        out[key] = float(item)
    return out


def _schedule(value: Any) -> tuple[int, ...]:
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) and 50 <= v <= 500 for v in value)
    ):
        raise ConfigError(
            f"{_WHERE}: chunk_length_schedule must be a non-empty list of whole numbers "
            f"50-500, got {value!r}"
        )
    return tuple(value)


def _http_url(config: Mapping[str, Any], key: str) -> str:
    value = _text(config, key)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{_WHERE}: {key} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")
