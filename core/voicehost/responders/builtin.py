"""The built-in responders, registered like any plugin's through the ``register_responders``
hook. The plugin host registers this module as the always-on internal plugin ``voicehost``."""

from __future__ import annotations

from collections.abc import Callable

from voicehost.contracts import ResponderProvider
from voicehost.hookspecs import hookimpl
from voicehost.responders.scripted import ScriptedResponderProvider
from voicehost.responders.webhook import WebhookResponderProvider


@hookimpl
def register_responders(register: Callable[[ResponderProvider], None]) -> None:
    """Register ``scripted`` (the default) and ``webhook``."""
    register(ScriptedResponderProvider())
    register(WebhookResponderProvider())
