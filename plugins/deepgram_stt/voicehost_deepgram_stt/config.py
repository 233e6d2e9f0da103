"""The ``[stt.deepgram]`` config blob: defaults, validation and the ``/v1/listen`` query.

Query parameters follow Deepgram's live streaming API (developers.deepgram.com/reference/
speech-to-text-api/listen-streaming; wire-protocols.md §4.1). μ-law from Twilio is declared as
``encoding=mulaw&sample_rate=8000&channels=1`` and sent unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from voicehost.provider_config import ConfigBlob, websocket_url
from voicehost.stt_stream import STREAM_DEFAULTS, StreamSettings

WHERE: Final = "[stt.deepgram]"

DEFAULT_CONFIG: Final[Mapping[str, Any]] = {
    "api_key": "${DEEPGRAM_API_KEY}",
    "model": "nova-3",
    "language": "en",
    "interim_results": True,
    "endpointing": 300,
    "utterance_end_ms": 1000,
    "vad_events": True,
    "smart_format": True,
    "punctuate": True,
    "keywords": [],
    "base_url": "https://api.deepgram.com",
    "keepalive_interval_s": 5.0,
    **STREAM_DEFAULTS,
}


def _ms(blob: ConfigBlob, key: str) -> int | None:
    """An integer of ms, or None for ``false`` / ``0`` (the feature off)."""
    value = blob.get(key)
    if value is None or value is False or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise blob.fail(key, f"must be an integer of ms ≥ 0 or false, not {value!r}")
    return value


@attrs.frozen
class DeepgramSTTConfig:
    """A validated ``[stt.deepgram]`` blob.

    Attributes:
        api_key: the Deepgram key (``Authorization: Token``).
        model: ``nova-3`` (default), ``nova-2`` …
        language: BCP-47 tag (``en``, ``en-US``, ``multi``) or "" for the model's default.
        interim_results: ask for interim (``is_final=false``) results → ``on_partial``.
        endpointing: ms of silence that ends an utterance (``speech_final``); None disables.
        utterance_end_ms: gap that triggers ``UtteranceEnd``; None disables. Needs
            ``interim_results``.
        vad_events: ask for ``SpeechStarted`` (barge-in).
        smart_format, punctuate: Deepgram formatting.
        keywords: terms to boost: sent as ``keyterm`` to Nova-3 models, ``keywords`` otherwise.
        base_url: the REST origin as the SDK takes it (``https://api.deepgram.com``); the
            WebSocket origin is derived (https→wss, http→ws).
        stream: reconnect/timeout/keep-alive settings (keep-alive default 5 s: Deepgram closes
            a socket that gets neither audio nor ``KeepAlive`` for about 10 s).
    """

    api_key: str
    model: str
    language: str
    interim_results: bool
    endpointing: int | None
    utterance_end_ms: int | None
    vad_events: bool
    smart_format: bool
    punctuate: bool
    keywords: tuple[str, ...]
    base_url: str
    websocket_base_url: str
    stream: StreamSettings

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DeepgramSTTConfig:
        """Validate a config blob.

        Raises:
            ConfigError: naming the key at fault (an unknown key too: a typo must not fall
                back to a default silently).
        """
        blob = ConfigBlob(config, DEFAULT_CONFIG, WHERE)
        blob.check_known()
        base_url = blob.http_url("base_url")
        keywords = blob.get("keywords")
        if isinstance(keywords, str):
            keywords = [keywords]
        if not isinstance(keywords, list | tuple) or not all(
            isinstance(k, str) and k.strip() for k in keywords
        ):
            raise blob.fail("keywords", "must be a list of non-empty strings")
        interim = blob.boolean("interim_results")
        utterance_end = _ms(blob, "utterance_end_ms")
        if utterance_end is not None and not interim:
            raise blob.fail("utterance_end_ms", "needs interim_results = true")
        return cls(
            api_key=blob.string("api_key", required=True),
            model=blob.string("model", required=True),
            language=blob.string("language"),
            interim_results=interim,
            endpointing=_ms(blob, "endpointing"),
            utterance_end_ms=utterance_end,
            vad_events=blob.boolean("vad_events"),
            smart_format=blob.boolean("smart_format"),
            punctuate=blob.boolean("punctuate"),
            keywords=tuple(k.strip() for k in keywords),
            base_url=base_url,
            websocket_base_url=websocket_url(base_url, where=WHERE),
            stream=StreamSettings.from_config(config, where=WHERE, keepalive=True),
        )

    def listen_options(self) -> dict[str, Any]:
        """Keyword arguments of ``client.listen.v1.connect`` (the ``/v1/listen`` query)."""
        options: dict[str, Any] = {
            "model": self.model,
            "encoding": "mulaw",
            "sample_rate": 8000,
            "channels": 1,
            "interim_results": self.interim_results,
            "endpointing": self.endpointing if self.endpointing is not None else False,
            "vad_events": self.vad_events,
            "smart_format": self.smart_format,
            "punctuate": self.punctuate,
        }
        if self.language:
            options["language"] = self.language
        if self.utterance_end_ms is not None:
            options["utterance_end_ms"] = self.utterance_end_ms
        if self.keywords:
            key = "keyterm" if self.model.startswith("nova-3") else "keywords"
            options[key] = list(self.keywords)
        return options
