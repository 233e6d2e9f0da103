"""The contracts between the host and its plugins: audio formats, the STT, TTS and responder
provider interfaces, and what a responder sees of a call.

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
    CallContext,
    ConversationTurn,
    HangUp,
    Responder,
    ResponderProvider,
    Role,
    collect_reply,
    history_tail,
)

__all__ = [
    "HANG_UP",
    "MULAW_8K",
    "PCM16_8K",
    "PCM16_16K",
    "PCM16_22K",
    "PCM16_24K",
    "AudioFormat",
    "CallContext",
    "ConfigT",
    "ConversationTurn",
    "Encoding",
    "HangUp",
    "Provider",
    "Responder",
    "ResponderProvider",
    "Role",
    "SpeechProvider",
    "TranscriptionCallbacks",
    "TranscriptionCapabilities",
    "TranscriptionProvider",
    "TranscriptionRequest",
    "TranscriptionSession",
    "collect_reply",
    "history_tail",
]
