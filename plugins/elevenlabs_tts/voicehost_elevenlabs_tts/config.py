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

import attrs

from voicehost.errors import ConfigError
from voicehost.provider_config import ConfigBlob

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
        """Parse ``config`` (missing keys take :data:`DEFAULT_CONFIG`'s values).

        Raises:
            ConfigError: naming the key at fault and what it should be.
        """
        blob = ConfigBlob(config, DEFAULT_CONFIG, _WHERE)
        blob.check_known()
        mode = blob.get("mode")
        if mode not in MODES:
            raise blob.fail("mode", f"must be 'http' or 'websocket', not {mode!r}")
        voice_id = blob.string("voice_id", strip=False)
        if not voice_id.strip():
            raise blob.fail(
                "voice_id", "is required (an ElevenLabs voice id, e.g. from GET /v1/voices)"
            )
        if "/" in voice_id or voice_id != voice_id.strip():
            raise blob.fail("voice_id", f"{voice_id!r} is not a voice id")
        return cls(
            api_key=blob.string("api_key", required=True, strip=False),
            voice_id=voice_id,
            model_id=blob.string("model_id", required=True, strip=False),
            voice_settings=_voice_settings(blob.get("voice_settings")),
            optimize_streaming_latency=blob.integer(
                "optimize_streaming_latency", minimum=0, maximum=4
            ),
            mode=mode,
            chunk_length_schedule=_schedule(blob.get("chunk_length_schedule")),
            base_url=blob.http_url("base_url"),
            timeout=blob.number("timeout", minimum=0.001, maximum=3600.0),
        )


def _voice_settings(value: Any) -> Mapping[str, float | bool]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{_WHERE} voice_settings must be a table, not {value!r}")
    out: dict[str, float | bool] = {}
    for key, item in value.items():
        if key not in VOICE_SETTING_RANGES:
            known = ", ".join(VOICE_SETTING_RANGES)
            raise ConfigError(f"{_WHERE} unknown voice_settings.{key} (known: {known})")
        bounds = VOICE_SETTING_RANGES[key]
        if bounds is None:
            if not isinstance(item, bool):
                raise ConfigError(f"{_WHERE} voice_settings.{key} must be true or false")
            out[key] = item
            continue
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise ConfigError(f"{_WHERE} voice_settings.{key} must be a number, not {item!r}")
        if not bounds[0] <= item <= bounds[1]:
            raise ConfigError(
                f"{_WHERE} voice_settings.{key} must be between {bounds[0]} and {bounds[1]}, "
                f"not {item}"
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
            f"{_WHERE} chunk_length_schedule must be a non-empty list of whole numbers "
            f"50-500, not {value!r}"
        )
    return tuple(value)
