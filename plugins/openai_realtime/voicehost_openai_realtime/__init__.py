"""voicehost-openai-realtime: the ``openai-realtime`` conversation provider (OpenAI Realtime
API speech-to-speech, G.711 μ-law passed through both ways as ``audio/pcmu``).

Loaded through the ``voicehost`` entry-point group (``openai_realtime``); registers through
the ``register_conversation_providers`` hook only, never at import time. Importing it does not
import the ``openai`` SDK (that waits for the first session or the preload).
"""

from __future__ import annotations

from collections.abc import Callable

from voicehost import ConversationProvider, hookimpl
from voicehost_openai_realtime.config import OpenAIRealtimeConfig
from voicehost_openai_realtime.provider import OpenAIRealtimeProvider
from voicehost_openai_realtime.session import OpenAIRealtimeSession

__all__ = [
    "OpenAIRealtimeConfig",
    "OpenAIRealtimeProvider",
    "OpenAIRealtimeSession",
    "register_conversation_providers",
]


@hookimpl
def register_conversation_providers(register: Callable[[ConversationProvider], None]) -> None:
    """Register the ``openai-realtime`` conversation provider."""
    register(OpenAIRealtimeProvider())
