"""The ``[stt.openai]`` config blob: defaults, validation and the ``session.update`` it makes.

Follows the GA Realtime transcription session (OpenAI "Realtime transcription" guide;
``session.update`` with ``session.type = "transcription"``, fields under
``session.audio.input``), as summarised in wire-protocols.md §2.2.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from voicehost.errors import ConfigError
from voicehost.provider_config import ConfigBlob, check_known_keys, websocket_url
from voicehost.stt_stream import STREAM_DEFAULTS, StreamSettings

WHERE: Final = "[stt.openai]"

#: ``audio/pcmu`` is G.711 μ-law at 8 kHz: Twilio's bytes go through untouched.
INPUT_FORMAT_TYPE: Final = "audio/pcmu"

TURN_DETECTION_TYPES: Final = ("server_vad", "semantic_vad")
EAGERNESS: Final = ("low", "medium", "high", "auto")
NOISE_REDUCTION: Final = ("near_field", "far_field")

DEFAULT_CONFIG: Final[Mapping[str, Any]] = {
    "api_key": "${OPENAI_API_KEY}",
    "model": "gpt-4o-transcribe",
    "language": "",
    "prompt": "",
    "turn_detection": {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "eagerness": "auto",
    },
    "noise_reduction": "near_field",
    "base_url": "https://api.openai.com/v1",
    "websocket_base_url": "",
    **STREAM_DEFAULTS,
}


def _turn_detection(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{WHERE} turn_detection must be a table, not {value!r}")
    check_known_keys(value, DEFAULT_CONFIG["turn_detection"], f"{WHERE} turn_detection")
    kind = value.get("type", "server_vad")
    if kind not in TURN_DETECTION_TYPES:
        raise ConfigError(
            f"{WHERE} turn_detection.type must be one of {', '.join(TURN_DETECTION_TYPES)},"
            f" not {kind!r}"
        )
    if kind == "semantic_vad":
        eagerness = value.get("eagerness", "auto")
        if eagerness not in EAGERNESS:
            raise ConfigError(
                f"{WHERE} turn_detection.eagerness must be one of {', '.join(EAGERNESS)},"
                f" not {eagerness!r}"
            )
        return {"type": "semantic_vad", "eagerness": eagerness}
    threshold = value.get("threshold", 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ConfigError(f"{WHERE} turn_detection.threshold must be a number, not {threshold!r}")
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"{WHERE} turn_detection.threshold must be within 0..1, not {threshold}")
    out: dict[str, Any] = {"type": "server_vad", "threshold": float(threshold)}
    for key, default in (("prefix_padding_ms", 300), ("silence_duration_ms", 500)):
        ms = value.get(key, default)
        if isinstance(ms, bool) or not isinstance(ms, int) or ms < 0:
            raise ConfigError(f"{WHERE} turn_detection.{key} must be an integer ≥ 0, not {ms!r}")
        out[key] = ms
    return out


def _noise_reduction(value: Any) -> str | None:
    if value in (None, "", "none", False):
        return None
    if value not in NOISE_REDUCTION:
        raise ConfigError(
            f"{WHERE} noise_reduction must be one of {', '.join(NOISE_REDUCTION)} or 'none',"
            f" not {value!r}"
        )
    return str(value)


@attrs.frozen
class OpenAISTTConfig:
    """A validated ``[stt.openai]`` blob.

    Attributes:
        api_key: the OpenAI key (``Authorization: Bearer``).
        model: the transcription model (``gpt-4o-transcribe``, ``gpt-4o-mini-transcribe`` …).
        language: ISO-639-1 code, or "" to let the model detect it.
        prompt: a hint for the transcription model, or "".
        turn_detection: the ``turn_detection`` object sent (server or semantic VAD).
        noise_reduction: ``near_field``, ``far_field`` or None (off).
        base_url: the REST origin as the SDK takes it (``https://api.openai.com/v1``).
        websocket_base_url: the WebSocket origin, derived from ``base_url`` (http→ws,
            https→wss) unless set.
        stream: reconnect/timeout settings (:class:`voicehost.stt_stream.StreamSettings`).
    """

    api_key: str
    model: str
    language: str
    prompt: str
    turn_detection: Mapping[str, Any]
    noise_reduction: str | None
    base_url: str
    websocket_base_url: str
    stream: StreamSettings

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OpenAISTTConfig:
        """Validate a config blob.

        Raises:
            ConfigError: naming the key at fault (an unknown key, an empty key, an unknown
                turn_detection type, a threshold out of 0..1, a base_url that is not http(s) …).
        """
        blob = ConfigBlob(config, DEFAULT_CONFIG, WHERE)
        blob.check_known()
        base_url = blob.http_url("base_url")
        ws_base = blob.string("websocket_base_url")
        ws_base = websocket_url(ws_base or base_url, where=WHERE, key="websocket_base_url")
        return cls(
            api_key=blob.string("api_key", required=True),
            model=blob.string("model", required=True),
            language=blob.string("language"),
            prompt=blob.string("prompt"),
            turn_detection=_turn_detection(blob.get("turn_detection")),
            noise_reduction=_noise_reduction(blob.get("noise_reduction")),
            base_url=base_url,
            websocket_base_url=ws_base,
            stream=StreamSettings.from_config(config, where=WHERE),
        )

    def session(self) -> dict[str, Any]:
        """The ``session`` object of the ``session.update`` event (GA transcription shape)."""
        transcription: dict[str, Any] = {"model": self.model}
        if self.language:
            transcription["language"] = self.language
        if self.prompt:
            transcription["prompt"] = self.prompt
        return {
            "type": "transcription",
            "audio": {
                "input": {
                    "format": {"type": INPUT_FORMAT_TYPE},
                    "transcription": transcription,
                    "turn_detection": dict(self.turn_detection),
                    "noise_reduction": (
                        {"type": self.noise_reduction} if self.noise_reduction else None
                    ),
                }
            },
        }
