"""The ``[stt.openai]`` table: its typed keys and the ``session.update`` it makes.

Follows the GA Realtime transcription session (OpenAI "Realtime transcription" guide;
``session.update`` with ``session.type = "transcription"``, fields under
``session.audio.input``), as summarised in wire-protocols.md §2.2. Needs no SDK: the ``openai``
package is imported only when the first session (or the preload) builds a client.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from voicehost import (
    ConfigModel,
    Field,
    StreamingConfig,
    env_field,
    field_validator,
    http_url,
    websocket_url,
)

__all__ = ["INPUT_FORMAT_TYPE", "WHERE", "OpenAISTTConfig", "TurnDetection"]

WHERE: Final = "[stt.openai]"

#: ``audio/pcmu`` is G.711 μ-law at 8 kHz: Twilio's bytes go through untouched.
INPUT_FORMAT_TYPE: Final = "audio/pcmu"


class TurnDetection(ConfigModel):
    """``[stt.openai] turn_detection``: how the server's VAD ends an utterance.

    ``server_vad`` uses ``threshold``, ``prefix_padding_ms`` and ``silence_duration_ms``;
    ``semantic_vad`` uses ``eagerness``. The keys of the other type are accepted (and checked)
    but not sent.
    """

    type: Literal["server_vad", "semantic_vad"] = Field(
        "server_vad", description="VAD kind: silence-based or semantic (the model's judgement)."
    )
    threshold: float = Field(
        0.5, ge=0, le=1, description="server_vad: speech probability that counts as speech."
    )
    prefix_padding_ms: int = Field(
        300, ge=0, description="server_vad: audio kept before detected speech, ms."
    )
    silence_duration_ms: int = Field(
        500, ge=0, description="server_vad: silence that ends an utterance, ms."
    )
    eagerness: Literal["low", "medium", "high", "auto"] = Field(
        "auto", description="semantic_vad: how soon the model ends a turn."
    )

    def wire(self) -> dict[str, Any]:
        """The ``turn_detection`` object of ``session.update`` (only the chosen type's keys)."""
        if self.type == "semantic_vad":
            return {"type": "semantic_vad", "eagerness": self.eagerness}
        return {
            "type": "server_vad",
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
        }


class OpenAISTTConfig(StreamingConfig):
    """``[stt.openai]``: OpenAI Realtime transcription, plus the reconnect / timeout knobs of
    :class:`voicehost.StreamingConfig` (no keep-alive by default: the server's VAD keeps the
    socket busy).

    Derived (not keys): :attr:`websocket_origin`, :meth:`session`.
    """

    api_key: str = env_field(
        "OPENAI_API_KEY", description="OpenAI API key (Authorization: Bearer).", repr=False
    )
    model: str = Field(
        "gpt-4o-transcribe",
        description="Transcription model (gpt-4o-transcribe, gpt-4o-mini-transcribe, …).",
    )
    language: str = Field(
        "", description='ISO-639-1 code of the caller\'s language ("en"); "" lets the model guess.'
    )
    prompt: str = Field("", description='A hint for the transcription model (names, terms); "".')
    turn_detection: TurnDetection = Field(
        TurnDetection(),
        description="Turn end, a table: type (server_vad | semantic_vad); server_vad's "
        "threshold (0..1), prefix_padding_ms, silence_duration_ms (ms); semantic_vad's "
        "eagerness (low | medium | high | auto).",
    )
    noise_reduction: Literal["near_field", "far_field", "none"] = Field(
        "near_field", description='Input noise reduction: "near_field", "far_field" or "none".'
    )
    base_url: str = Field(
        "https://api.openai.com/v1", description="REST origin as the SDK takes it, http(s)."
    )
    websocket_base_url: str = Field(
        "", description='WebSocket origin; "" derives it from base_url (https→wss, http→ws).'
    )

    @field_validator("model")
    @classmethod
    def _model_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("language", "prompt")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("turn_detection", mode="before")
    @classmethod
    def _turn_detection_table(cls, value: Any) -> Any:
        if isinstance(value, dict | TurnDetection):
            return value
        raise ValueError(f'must be a table ({{ type = "server_vad", … }}), not {value!r}')

    @field_validator("noise_reduction", mode="before")
    @classmethod
    def _noise_reduction_off(cls, value: Any) -> Any:
        """``""`` and ``false`` spell "none" too."""
        return "none" if value == "" or value is False else value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("websocket_base_url")
    @classmethod
    def _websocket_base_url(cls, value: str) -> str:
        value = value.strip()
        return websocket_url(value) if value else ""

    @property
    def websocket_origin(self) -> str:
        """The WebSocket origin the SDK connects to: ``websocket_base_url``, or ``base_url``
        with http→ws, https→wss (``wss://api.openai.com/v1``)."""
        return self.websocket_base_url or websocket_url(self.base_url)

    def session(self) -> dict[str, Any]:
        """The ``session`` object of the ``session.update`` event (GA transcription shape)."""
        transcription: dict[str, Any] = {"model": self.model}
        if self.language:
            transcription["language"] = self.language
        if self.prompt:
            transcription["prompt"] = self.prompt
        noise = None if self.noise_reduction == "none" else {"type": self.noise_reduction}
        return {
            "type": "transcription",
            "audio": {
                "input": {
                    "format": {"type": INPUT_FORMAT_TYPE},
                    "transcription": transcription,
                    "turn_detection": self.turn_detection.wire(),
                    "noise_reduction": noise,
                }
            },
        }
