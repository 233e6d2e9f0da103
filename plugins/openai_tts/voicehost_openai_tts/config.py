"""The ``[tts.openai]`` table: :class:`OpenAITTSConfig`, the single source of its keys,
defaults, ranges and docs (``voicehost config schema openai`` prints them).

Every key is optional in ``plugins.toml``; ``api_key`` defaults to ``${OPENAI_API_KEY}``,
resolved by the host at start-up (unset → a ``ConfigError`` naming the variable). The host
parses the table once, at start-up; the provider receives the frozen object on every call.

Protocol: ``POST {base_url}/audio/speech`` (wire-protocols.md §3.1; OpenAI API reference,
"Create speech"). This module does not import the ``openai`` SDK.
"""

from __future__ import annotations

from typing import Any

from voicehost import Field, ProviderConfig, env_field, field_validator, http_url, model_validator

__all__ = ["MAX_INPUT_CHARS", "MODELS_WITHOUT_INSTRUCTIONS", "PROVIDER_ID", "OpenAITTSConfig"]

#: The provider id: ``[tts] provider = "openai"``, table ``[tts.openai]``.
PROVIDER_ID = "openai"
#: ``input`` is limited to 4096 characters a request by the vendor.
MAX_INPUT_CHARS = 4096
#: Models that reject ``instructions``.
MODELS_WITHOUT_INSTRUCTIONS = frozenset({"tts-1", "tts-1-hd"})
#: A custom voice id starts with this; it is sent as ``{"id": …}``, built-in voices by name.
CUSTOM_VOICE_PREFIX = "voice_"


class OpenAITTSConfig(ProviderConfig):
    """The validated ``[tts.openai]`` table (strict types, unknown keys refused, frozen).

    Raises (from ``model_validate`` / the host's ``parse_table``):
        pydantic.ValidationError: a key of the wrong type or out of range, a blank
            ``api_key``/``model``/``voice``, a ``base_url`` that is not ``http(s)://``, or
            ``instructions`` with a ``tts-1*`` model; the host turns it into a
            :class:`voicehost.ConfigError` naming the file, table, key and value.
    """

    api_key: str = env_field(
        "OPENAI_API_KEY",
        description="Bearer key for the API; default: the OPENAI_API_KEY environment variable.",
    )
    model: str = Field(
        "gpt-4o-mini-tts",
        description="TTS model id: gpt-4o-mini-tts, tts-1, tts-1-hd …",
    )
    voice: str = Field(
        "coral",
        description='Built-in voice name (coral, nova …) or a custom voice id "voice_…".',
    )
    instructions: str = Field(
        "",
        description='Tone/style prompt; "" sends none. Not accepted by tts-1 / tts-1-hd.',
    )
    speed: float = Field(1.0, ge=0.25, le=4.0, description="Speaking speed factor; 1.0 = normal.")
    base_url: str = Field(
        "https://api.openai.com/v1",
        description="API origin including /v1, as the openai SDK takes it (proxies, tests).",
    )
    timeout: float = Field(
        30.0, ge=0.001, le=3600.0, description="Seconds for connecting and for each read."
    )
    max_retries: int = Field(
        0,
        ge=0,
        le=10,
        description="SDK retries of 408/409/429/5xx before any audio; 0: a caller should "
        "not wait through back-off.",
    )

    @field_validator("api_key", "model", "voice")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(f"must not be blank, not {value!r}")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_origin(cls, value: str) -> str:
        return http_url(value)

    @model_validator(mode="after")
    def _instructions_need_a_model_that_takes_them(self) -> OpenAITTSConfig:
        if self.instructions and self.model in MODELS_WITHOUT_INSTRUCTIONS:
            raise ValueError(
                f"instructions = {self.instructions!r} is not supported by model "
                f"{self.model!r} (use gpt-4o-mini-tts, or leave instructions empty)"
            )
        return self

    @property
    def voice_parameter(self) -> str | dict[str, Any]:
        """The request's ``voice``: ``{"id": "voice_…"}`` for a custom voice, else the
        built-in voice's name."""
        if self.voice.startswith(CUSTOM_VOICE_PREFIX):
            return {"id": self.voice}
        return self.voice
