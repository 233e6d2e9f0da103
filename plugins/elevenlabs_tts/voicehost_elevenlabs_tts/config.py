"""The ``[tts.elevenlabs]`` table: :class:`ElevenLabsConfig`, the single source of its keys,
defaults, ranges and docs (``voicehost config schema elevenlabs`` prints them).

``voice_id`` is required; every other key is optional. ``api_key`` defaults to
``${ELEVENLABS_API_KEY}``, resolved by the host at start-up (unset → a ``ConfigError`` naming
the variable). The host parses the table once, at start-up; the provider receives the frozen
object on every call. Example::

    [tts.elevenlabs]
    voice_id = "JBFqnCBsd6RMkjVDRZzb"
    mode = "websocket"
    voice_settings = { stability = 0.4, speed = 1.1 }

Audio is always requested as ``output_format = "ulaw_8000"``: Twilio's own format, so the
bytes go into the call without conversion (wire-protocols.md §5; ElevenLabs API reference,
"Stream speech" and "WebSocket stream-input"). This module does not import the
``elevenlabs`` SDK.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from voicehost import (
    ConfigModel,
    Field,
    ProviderConfig,
    env_field,
    field_validator,
    http_url,
    websocket_url,
)

__all__ = [
    "OUTPUT_FORMAT",
    "PROVIDER_ID",
    "ElevenLabsConfig",
    "ElevenLabsVoiceSettings",
    "Mode",
]

#: The provider id: ``[tts] provider = "elevenlabs"``, table ``[tts.elevenlabs]``.
PROVIDER_ID = "elevenlabs"
#: G.711 μ-law, 8 kHz, mono, headerless.
OUTPUT_FORMAT = "ulaw_8000"
Mode = Literal["http", "websocket"]


class ElevenLabsVoiceSettings(ConfigModel):
    """``voice_settings``: overrides of the voice's stored settings. A key left out (None)
    is not sent, so the vendor keeps the voice's own value; an empty table sends none."""

    stability: float | None = Field(
        None, ge=0.0, le=1.0, description="Voice stability, 0 (varied) to 1 (monotone)."
    )
    similarity_boost: float | None = Field(
        None, ge=0.0, le=1.0, description="How closely to match the original voice, 0 to 1."
    )
    style: float | None = Field(
        None, ge=0.0, le=1.0, description="Style exaggeration, 0 (none) to 1."
    )
    speed: float | None = Field(
        None, ge=0.7, le=1.2, description="Speaking speed factor; 1.0 = normal."
    )
    use_speaker_boost: bool | None = Field(
        None, description="Boost similarity to the original speaker (adds latency)."
    )

    def to_request(self) -> dict[str, float | bool]:
        """The keys that are set, as the request's ``voice_settings`` object."""
        return self.model_dump(exclude_none=True)


class ElevenLabsConfig(ProviderConfig):
    """The validated ``[tts.elevenlabs]`` table (strict types, unknown keys refused, frozen).

    Raises (from ``model_validate`` / the host's ``parse_table``):
        pydantic.ValidationError: ``voice_id`` missing or not a voice id, a key of the wrong
            type or out of range (``voice_settings`` keys included), an unknown ``mode``, a
            ``base_url`` that is not ``http(s)://``; the host turns it into a
            :class:`voicehost.ConfigError` naming the file, table, key and value.
    """

    api_key: str = env_field(
        "ELEVENLABS_API_KEY",
        description="Sent as xi-api-key; default: the ELEVENLABS_API_KEY environment variable.",
    )
    voice_id: str = Field(
        description="The voice to speak with: an ElevenLabs voice id (GET /v1/voices)."
    )
    model_id: str = Field(
        "eleven_flash_v2_5", description="TTS model id; eleven_flash_v2_5 has ~75 ms latency."
    )
    voice_settings: ElevenLabsVoiceSettings = Field(
        default_factory=ElevenLabsVoiceSettings,
        description="Table of stability, similarity_boost, style (0-1), speed (0.7-1.2), "
        "use_speaker_boost; empty = the voice's stored settings.",
    )
    optimize_streaming_latency: int = Field(
        0,
        ge=0,
        le=4,
        description="HTTP mode: the vendor's latency optimisation level; 0 is not sent.",
    )
    mode: Mode = Field(
        "http",
        description='"http": one POST …/stream per reply; "websocket": stream-input, text '
        "spoken as it arrives.",
    )
    chunk_length_schedule: list[int] = Field(
        default_factory=lambda: [50],
        description="Websocket mode: characters buffered before each generation, 50-500 each.",
    )
    base_url: str = Field(
        "https://api.elevenlabs.io",
        description="API origin as the SDK takes it; the WebSocket URL is derived "
        "(http→ws, https→wss).",
    )
    timeout: float = Field(
        30.0, ge=0.001, le=3600.0, description="Seconds for connecting and for each read/send."
    )

    @field_validator("api_key", "model_id")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(f"must not be blank, not {value!r}")
        return value

    @field_validator("voice_id")
    @classmethod
    def _voice_id(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(
                f"must be an ElevenLabs voice id (e.g. from GET /v1/voices), not {value!r}"
            )
        if "/" in value or value != value.strip():
            raise ValueError(f"{value!r} is not a voice id")
        return value

    @field_validator("chunk_length_schedule")
    @classmethod
    def _schedule(cls, value: list[int]) -> list[int]:
        if not value or not all(50 <= n <= 500 for n in value):
            raise ValueError(f"must be a non-empty list of whole numbers 50-500, not {value!r}")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_origin(cls, value: str) -> str:
        return http_url(value)

    @property
    def stream_input_url(self) -> str:
        """The ``stream-input`` WebSocket URL: ``base_url`` with http→ws / https→wss, then
        ``/v1/text-to-speech/{voice_id}/stream-input?model_id=…&output_format=ulaw_8000``
        (the SDK's ``build_ws_url`` rule: segments percent-encoded, the base's query
        dropped)."""
        parts = urlsplit(websocket_url(self.base_url))
        segments = ("v1", "text-to-speech", self.voice_id, "stream-input")
        path = parts.path + "/" + "/".join(quote(s, safe="") for s in segments)
        query = urlencode(
            {"model_id": self.model_id, "output_format": OUTPUT_FORMAT}, quote_via=quote
        )
        return urlunsplit((parts.scheme, parts.netloc, path, query, ""))
