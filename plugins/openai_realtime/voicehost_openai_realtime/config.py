"""The ``[conversation.openai-realtime]`` table: its typed keys and the ``session.update`` it
makes.

Follows the GA Realtime conversation session (OpenAI Realtime API reference,
``session.update`` with ``session.type = "realtime"``; wire-protocols.md §3.2), configured as
the seed configures it: ``gpt-realtime``, voice ``marin``, ``audio/pcmu`` in and out (G.711
μ-law 8 kHz, Twilio's bytes untouched), ``semantic_vad`` turn detection, caller transcription
with ``gpt-4o-mini-transcribe``. Needs no SDK.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Literal

from voicehost import (
    ConversationConfig,
    Field,
    ToolSpec,
    env_field,
    field_validator,
    http_url,
    websocket_url,
)

__all__ = ["AUDIO_FORMAT_TYPE", "WHERE", "OpenAIRealtimeConfig"]

WHERE: Final = "[conversation.openai-realtime]"

#: ``audio/pcmu`` is G.711 μ-law at 8 kHz, both ways: no resampling, no transcoding.
AUDIO_FORMAT_TYPE: Final = "audio/pcmu"

Eagerness = Literal["low", "medium", "high", "auto"]


class OpenAIRealtimeConfig(ConversationConfig):
    """``[conversation.openai-realtime]``: the OpenAI Realtime speech-to-speech session, plus
    the keys every conversation provider has (:class:`voicehost.ConversationConfig`:
    ``instructions``, ``greeting``, ``tools``, ``transfer_targets``, ``tool_timeout_s``,
    ``max_session_s``, ``reconnect_attempts``, ``apology``; the host reads those).

    Derived (not keys): :attr:`websocket_origin`, :attr:`connect_query`, :meth:`session`.
    """

    api_key: str = env_field(
        "OPENAI_API_KEY", description="OpenAI API key (Authorization: Bearer).", repr=False
    )
    base_url: str = Field(
        "https://api.openai.com/v1",
        description="REST origin as the SDK takes it, http(s); the WebSocket origin is derived "
        "from it (https→wss, http→ws, the /v1 path kept).",
    )
    model: str = Field(
        "gpt-realtime",
        description="Realtime model (gpt-realtime, gpt-realtime-mini, …); the ?model= of the "
        "WebSocket URL.",
    )
    voice: str = Field(
        "marin",
        description="Output voice (alloy, ash, ballad, coral, echo, sage, shimmer, verse, marin, "
        "cedar); fixed once the model has spoken.",
    )
    eagerness: Eagerness = Field(
        "high",
        description="semantic_vad: how soon the model ends the caller's turn (low | medium | "
        "high | auto).",
    )
    interrupt_response: bool = Field(
        True, description="The vendor cancels its answer when the caller starts speaking."
    )
    create_response: bool = Field(
        True, description="The vendor answers by itself when the caller's turn ends."
    )
    transcription_model: str = Field(
        "gpt-4o-mini-transcribe",
        description='Model transcribing the caller\'s turns (for records); "" turns caller '
        "transcripts off.",
    )
    temperature: float = Field(
        0.8,
        ge=0.6,
        le=1.2,
        description="Sampling temperature (0.6..1.2); the GA session has no such field, so it "
        "is sent as the URL query parameter ?temperature=, as the seed does.",
    )
    speed: float = Field(
        1.0, ge=0.25, le=1.5, description="Speaking speed, 0.25..1.5 (1.0 normal)."
    )
    connect_timeout_s: float = Field(
        10.0,
        gt=0,
        le=120,
        description="Bound of the WebSocket upgrade and of the session.updated answer, s.",
    )

    @field_validator("model", "voice")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("transcription_model")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return http_url(value)

    @property
    def websocket_origin(self) -> str:
        """The SDK's ``websocket_base_url``: ``base_url`` with http→ws, https→wss and its path
        kept (``wss://api.openai.com/v1``); the SDK appends ``/realtime``."""
        return websocket_url(self.base_url)

    @property
    def connect_query(self) -> dict[str, str]:
        """Extra query parameters of the WebSocket URL: ``{"temperature": "0.8"}`` (the seed
        sends ``?model=…&temperature=…``; GA ``session.update`` has no temperature)."""
        return {"temperature": f"{self.temperature:g}"}

    def session(self, instructions: str, tools: Iterable[ToolSpec]) -> dict[str, Any]:
        """The ``session`` object of ``session.update`` (GA conversation shape, §3.2).

        Args:
            instructions: the composed system instructions (``ConversationRequest``).
            tools: the tools to declare, as ``{"type": "function", name, description,
                parameters}`` each.
        """
        audio_in: dict[str, Any] = {
            "format": {"type": AUDIO_FORMAT_TYPE},
            "turn_detection": {
                "type": "semantic_vad",
                "eagerness": self.eagerness,
                "create_response": self.create_response,
                "interrupt_response": self.interrupt_response,
            },
        }
        if self.transcription_model:
            audio_in["transcription"] = {"model": self.transcription_model}
        output: dict[str, Any] = {"format": {"type": AUDIO_FORMAT_TYPE}, "voice": self.voice}
        if self.speed != 1.0:
            output["speed"] = self.speed
        return {
            "type": "realtime",
            "model": self.model,
            "output_modalities": ["audio"],
            "instructions": instructions,
            "audio": {"input": audio_in, "output": output},
            "tools": [{"type": "function", **spec.to_json()} for spec in tools],
            "tool_choice": "auto",
        }
