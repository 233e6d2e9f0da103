"""The contracts between the host and its plugins: audio formats, the STT, TTS and responder
provider interfaces, what a responder sees of a call, and the tools a responder may call.

Plugins import these from :mod:`voicehost` itself; inside the core, import them from here.
"""

from voicehost.contracts.formats import (
    MULAW_8K,
    PCM16_8K,
    PCM16_16K,
    PCM16_22K,
    PCM16_24K,
    AudioFormat,
    Encoding,
)
from voicehost.contracts.providers import (
    ConfigT,
    Provider,
    SpeechProvider,
    TranscriptionCallbacks,
    TranscriptionCapabilities,
    TranscriptionProvider,
    TranscriptionRequest,
    TranscriptionSession,
)
from voicehost.contracts.responders import (
    HANG_UP,
    Action,
    CallContext,
    ConversationTurn,
    HangUp,
    ReplyItem,
    Responder,
    ResponderProvider,
    Role,
    SendDtmf,
    Transfer,
    TurnMode,
    collect_reply,
    history_tail,
)
from voicehost.contracts.tools import Tool, ToolError, ToolHandler, ToolUse

__all__ = [
    "HANG_UP",
    "MULAW_8K",
    "PCM16_8K",
    "PCM16_16K",
    "PCM16_22K",
    "PCM16_24K",
    "Action",
    "AudioFormat",
    "CallContext",
    "ConfigT",
    "ConversationTurn",
    "Encoding",
    "HangUp",
    "Provider",
    "ReplyItem",
    "Responder",
    "ResponderProvider",
    "Role",
    "SendDtmf",
    "SpeechProvider",
    "Tool",
    "ToolError",
    "ToolHandler",
    "ToolUse",
    "TranscriptionCallbacks",
    "TranscriptionCapabilities",
    "TranscriptionProvider",
    "TranscriptionRequest",
    "TranscriptionSession",
    "Transfer",
    "TurnMode",
    "collect_reply",
    "history_tail",
]
