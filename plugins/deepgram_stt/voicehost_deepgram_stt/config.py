"""The ``[stt.deepgram]`` table: its typed keys and the ``/v1/listen`` query it makes.

Query parameters follow Deepgram's live streaming API (developers.deepgram.com/reference/
speech-to-text-api/listen-streaming; wire-protocols.md §4.1). μ-law from Twilio is declared as
``encoding=mulaw&sample_rate=8000&channels=1`` and sent unchanged. Needs no SDK: the
``deepgram`` package is imported only when the first session (or the preload) builds a client.
"""

from __future__ import annotations

from typing import Any, Final

from voicehost import (
    Field,
    StreamingConfig,
    env_field,
    field_validator,
    http_url,
    model_validator,
    websocket_url,
)

__all__ = ["WHERE", "DeepgramSTTConfig"]

WHERE: Final = "[stt.deepgram]"


def _ms_or_false(value: Any) -> Any:
    """``false`` or ``0`` → ``False`` (the feature off); an integer of ms ≥ 0 kept.

    Raises:
        ValueError: ``true``, a negative number, a float or anything else.
    """
    if value is False or (type(value) is int and value == 0):
        return False
    if type(value) is not int or value < 0:
        shown = "true" if value is True else repr(value)
        raise ValueError(f"must be an integer of ms ≥ 0 or false, not {shown}")
    return value


class DeepgramSTTConfig(StreamingConfig):
    """``[stt.deepgram]``: Deepgram live streaming (``/v1/listen``), plus the reconnect /
    timeout knobs of :class:`voicehost.StreamingConfig`, with a keep-alive every 5 s by
    default (Deepgram closes a socket that gets neither audio nor ``KeepAlive`` for about
    10 s; pipecat #1113).

    ``endpointing`` and ``utterance_end_ms`` take an integer of ms, or ``false`` (or ``0``) to
    turn the feature off; the parsed value is then ``False``. ``utterance_end_ms`` needs
    ``interim_results = true`` (Deepgram's rule).

    Derived (not keys): :attr:`websocket_origin`, :meth:`listen_options`.
    """

    api_key: str = env_field(
        "DEEPGRAM_API_KEY", description="Deepgram API key (Authorization: Token).", repr=False
    )
    model: str = Field("nova-3", description="Deepgram model (nova-3, nova-2, …).")
    language: str = Field(
        "en", description='BCP-47 language tag ("en", "en-US", "multi"); "" for the model\'s.'
    )
    interim_results: bool = Field(
        True, description="Ask for interim results (on_partial while the caller speaks)."
    )
    endpointing: int | bool = Field(
        300, description="Silence that ends an utterance (speech_final), ms ≥ 0; false: off."
    )
    utterance_end_ms: int | bool = Field(
        1000,
        description="Word gap that sends UtteranceEnd, ms ≥ 0; false: off. Needs interim_results.",
    )
    vad_events: bool = Field(True, description="Ask for SpeechStarted events (barge-in).")
    smart_format: bool = Field(True, description="Deepgram smart formatting (numbers, dates).")
    punctuate: bool = Field(True, description="Add punctuation and capitalisation.")
    keywords: list[str] = Field(
        [],
        description="Terms to boost; sent as keyterm to nova-3 models, as keywords otherwise.",
    )
    base_url: str = Field(
        "https://api.deepgram.com",
        description="REST origin as the SDK takes it, http(s); the WebSocket one is derived.",
    )
    keepalive_interval_s: float = Field(
        5.0,
        ge=0,
        description="Send KeepAlive after this long without audio, s (0: none; Deepgram "
        "closes a socket idle for ~10 s).",
    )

    @field_validator("model")
    @classmethod
    def _model_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("language")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("endpointing", "utterance_end_ms", mode="before")
    @classmethod
    def _ms(cls, value: Any) -> Any:
        return _ms_or_false(value)

    @field_validator("keywords", mode="before")
    @classmethod
    def _one_keyword(cls, value: Any) -> Any:
        """A single string is a list of one term."""
        return [value] if isinstance(value, str) else value

    @field_validator("keywords")
    @classmethod
    def _keywords_not_blank(cls, value: list[str]) -> list[str]:
        terms = [term.strip() for term in value]
        if not all(terms):
            raise ValueError(f"must be a list of non-empty strings, not {value!r}")
        return terms

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return http_url(value)

    @model_validator(mode="after")
    def _utterance_end_needs_interim(self) -> DeepgramSTTConfig:
        if self.utterance_end_ms is not False and not self.interim_results:
            raise ValueError("utterance_end_ms needs interim_results = true")
        return self

    @property
    def websocket_origin(self) -> str:
        """The WebSocket origin of ``base_url`` (https→wss, http→ws): ``wss://api.deepgram.com``."""
        return websocket_url(self.base_url)

    def listen_options(self) -> dict[str, Any]:
        """Keyword arguments of ``client.listen.v1.connect`` (the ``/v1/listen`` query)."""
        options: dict[str, Any] = {
            "model": self.model,
            "encoding": "mulaw",
            "sample_rate": 8000,
            "channels": 1,
            "interim_results": self.interim_results,
            "endpointing": self.endpointing,
            "vad_events": self.vad_events,
            "smart_format": self.smart_format,
            "punctuate": self.punctuate,
        }
        if self.language:
            options["language"] = self.language
        if self.utterance_end_ms is not False:
            options["utterance_end_ms"] = self.utterance_end_ms
        if self.keywords:
            key = "keyterm" if self.model.startswith("nova-3") else "keywords"
            options[key] = list(self.keywords)
        return options
