"""voicehost plugin: the ``openai`` responder — streamed replies from any OpenAI-compatible
chat model (OpenAI, vLLM, Ollama, llama.cpp server, LM Studio) with call tools.

Loaded from the ``voicehost`` entry point ``openai_responder``; registers through the
``register_responders`` hook only (never at import time). Importing this package imports
neither the ``openai`` SDK nor aiohttp: ``preload`` or the first turn does.
"""

from __future__ import annotations

from collections.abc import Callable

from voicehost import ResponderProvider, hookimpl
from voicehost_openai_responder.config import OpenAIResponderConfig
from voicehost_openai_responder.responder import OpenAIResponder, OpenAIResponderProvider

__all__ = [
    "OpenAIResponder",
    "OpenAIResponderConfig",
    "OpenAIResponderProvider",
    "register_responders",
]


@hookimpl
def register_responders(register: Callable[[ResponderProvider], None]) -> None:
    """Register the ``openai`` responder."""
    register(OpenAIResponderProvider())
