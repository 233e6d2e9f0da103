"""Responders: what the bot says. See :mod:`voicehost.responders.base` for the contract and
:mod:`voicehost.responders.builtin` for the built-ins (``scripted``, ``webhook``)."""

from voicehost.responders.base import (
    HANG_UP,
    CallContext,
    ConversationTurn,
    HangUp,
    Responder,
    ResponderProvider,
    collect_reply,
)

__all__ = [
    "HANG_UP",
    "CallContext",
    "ConversationTurn",
    "HangUp",
    "Responder",
    "ResponderProvider",
    "collect_reply",
]
