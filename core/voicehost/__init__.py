"""voicehost: a plugin host for phone-call voice bots.

Twilio streams a call's audio (G.711 μ-law, 8 kHz, 20 ms frames) over a WebSocket; voicehost
feeds it to a speech-to-text provider, turns final transcripts into replies, speaks them
through a text-to-speech provider and streams the audio back, with barge-in. Providers are
plugins discovered through the ``voicehost`` entry-point group.

This module is the whole plugin API: a plugin imports only from ``voicehost``. Every name
loads on first use (PEP 562), so ``voicehost --help`` imports none of pydantic, numpy or
aiohttp, and a plugin module that only declares its provider stays cheap to import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import Field, field_validator, model_validator

    from voicehost.audio import AudioConverter, StreamResampler, ulaw_decode, ulaw_encode
    from voicehost.client_pool import LoopClientPool
    from voicehost.config_model import ConfigModel, ProviderConfig, env_field
    from voicehost.contracts import (
        CALL_TOOLS,
        HANG_UP,
        MULAW_8K,
        PCM16_8K,
        PCM16_16K,
        PCM16_22K,
        PCM16_24K,
        Action,
        AudioFormat,
        AudioOut,
        BotTranscript,
        CallContext,
        CallerSpeechStarted,
        CallerSpeechStopped,
        CallerTranscript,
        ConversationConfig,
        ConversationError,
        ConversationEvent,
        ConversationProvider,
        ConversationRequest,
        ConversationSession,
        ConversationTransferTarget,
        ConversationTurn,
        HangUp,
        Provider,
        ReplyItem,
        Responder,
        ResponderProvider,
        ResponseDone,
        SendDtmf,
        SessionExpiring,
        SpeechProvider,
        Tool,
        ToolCall,
        ToolError,
        ToolHandler,
        ToolSpec,
        ToolUse,
        TranscriptionCallbacks,
        TranscriptionCapabilities,
        TranscriptionProvider,
        TranscriptionRequest,
        TranscriptionSession,
        Transfer,
        TurnConfig,
        TurnDecision,
        TurnDetector,
        TurnDetectorProvider,
        collect_reply,
    )
    from voicehost.errors import (
        ConfigError,
        PluginError,
        ProviderAuthError,
        ProviderConnectionError,
        ProviderError,
        VoicehostError,
        error_for_status,
        stream_dropped,
        stream_timed_out,
    )
    from voicehost.hookspecs import hookimpl
    from voicehost.stt_stream import (
        StreamingConfig,
        StreamingTranscriptionProvider,
        StreamingTranscriptionSession,
        upgrade_error,
    )
    from voicehost.text import sentences, split_sentences
    from voicehost.urls import http_url, websocket_url

#: Every public name → the module that defines it. Loaded on first use (PEP 562), so that
#: importing one submodule (``voicehost.cli`` for ``voicehost --help``) does not pay for
#: pydantic, numpy or aiohttp.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(["Field", "field_validator", "model_validator"], "pydantic"),
    **dict.fromkeys(
        ["AudioConverter", "StreamResampler", "ulaw_decode", "ulaw_encode"], "voicehost.audio"
    ),
    "LoopClientPool": "voicehost.client_pool",
    **dict.fromkeys(["ConfigModel", "ProviderConfig", "env_field"], "voicehost.config_model"),
    **dict.fromkeys(
        [
            "CALL_TOOLS",
            "AudioOut",
            "BotTranscript",
            "CallerSpeechStarted",
            "CallerSpeechStopped",
            "CallerTranscript",
            "ConversationConfig",
            "ConversationError",
            "ConversationEvent",
            "ConversationProvider",
            "ConversationRequest",
            "ConversationSession",
            "ConversationTransferTarget",
            "ResponseDone",
            "SessionExpiring",
            "ToolCall",
            "ToolSpec",
            "HANG_UP",
            "MULAW_8K",
            "PCM16_8K",
            "PCM16_16K",
            "PCM16_22K",
            "PCM16_24K",
            "Action",
            "AudioFormat",
            "CallContext",
            "ConversationTurn",
            "HangUp",
            "Provider",
            "ReplyItem",
            "Responder",
            "ResponderProvider",
            "SendDtmf",
            "SpeechProvider",
            "TranscriptionCallbacks",
            "TranscriptionCapabilities",
            "TranscriptionProvider",
            "TranscriptionRequest",
            "TranscriptionSession",
            "Tool",
            "ToolError",
            "ToolHandler",
            "ToolUse",
            "Transfer",
            "TurnConfig",
            "TurnDecision",
            "TurnDetector",
            "TurnDetectorProvider",
            "collect_reply",
        ],
        "voicehost.contracts",
    ),
    **dict.fromkeys(
        [
            "ConfigError",
            "PluginError",
            "ProviderAuthError",
            "ProviderConnectionError",
            "ProviderError",
            "VoicehostError",
            "error_for_status",
            "stream_dropped",
            "stream_timed_out",
        ],
        "voicehost.errors",
    ),
    "hookimpl": "voicehost.hookspecs",
    **dict.fromkeys(
        [
            "StreamingConfig",
            "StreamingTranscriptionProvider",
            "StreamingTranscriptionSession",
            "upgrade_error",
        ],
        "voicehost.stt_stream",
    ),
    **dict.fromkeys(["sentences", "split_sentences"], "voicehost.text"),
    **dict.fromkeys(["http_url", "websocket_url"], "voicehost.urls"),
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("voicehost")
        except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
            value = "0.0.0"
    else:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module 'voicehost' has no attribute {name!r}")
        value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, "__version__"])


__all__ = [
    "CALL_TOOLS",
    "HANG_UP",
    "MULAW_8K",
    "PCM16_8K",
    "PCM16_16K",
    "PCM16_22K",
    "PCM16_24K",
    "Action",
    "AudioConverter",
    "AudioFormat",
    "AudioOut",
    "BotTranscript",
    "CallContext",
    "CallerSpeechStarted",
    "CallerSpeechStopped",
    "CallerTranscript",
    "ConfigError",
    "ConfigModel",
    "ConversationConfig",
    "ConversationError",
    "ConversationEvent",
    "ConversationProvider",
    "ConversationRequest",
    "ConversationSession",
    "ConversationTransferTarget",
    "ConversationTurn",
    "Field",
    "HangUp",
    "LoopClientPool",
    "PluginError",
    "Provider",
    "ProviderAuthError",
    "ProviderConfig",
    "ProviderConnectionError",
    "ProviderError",
    "ReplyItem",
    "Responder",
    "ResponderProvider",
    "ResponseDone",
    "SendDtmf",
    "SessionExpiring",
    "SpeechProvider",
    "StreamResampler",
    "StreamingConfig",
    "StreamingTranscriptionProvider",
    "StreamingTranscriptionSession",
    "Tool",
    "ToolCall",
    "ToolError",
    "ToolHandler",
    "ToolSpec",
    "ToolUse",
    "TranscriptionCallbacks",
    "TranscriptionCapabilities",
    "TranscriptionProvider",
    "TranscriptionRequest",
    "TranscriptionSession",
    "Transfer",
    "TurnConfig",
    "TurnDecision",
    "TurnDetector",
    "TurnDetectorProvider",
    "VoicehostError",
    "__version__",
    "collect_reply",
    "env_field",
    "error_for_status",
    "field_validator",
    "hookimpl",
    "http_url",
    "model_validator",
    "sentences",
    "split_sentences",
    "stream_dropped",
    "stream_timed_out",
    "ulaw_decode",
    "ulaw_encode",
    "upgrade_error",
    "websocket_url",
]
