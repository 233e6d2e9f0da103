"""pluggy hook specifications for voicehost (project name ``voicehost``).

A plugin is a module named by an entry point in the ``voicehost`` group. It implements any
of these hooks with ``@voicehost.hookimpl``; the host calls them once after loading. Plugins
register through hooks only, never at import time (registering at import time broke LiveKit
under web servers, livekit/agents #2006).

Example::

    from voicehost import hookimpl

    @hookimpl
    def register_speech_providers(register):
        register(MySpeechProvider())
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from voicehost.contracts import (
        ConversationProvider,
        ResponderProvider,
        SpeechProvider,
        Tool,
        TranscriptionProvider,
        TurnDetectorProvider,
    )

PROJECT_NAME = "voicehost"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_transcription_providers(
    register: Callable[[TranscriptionProvider], None],
) -> None:
    """Register speech-to-text providers: call ``register(provider)`` once per provider."""


@hookspec
def register_speech_providers(register: Callable[[SpeechProvider], None]) -> None:
    """Register text-to-speech providers: call ``register(provider)`` once per provider."""


@hookspec
def register_responders(register: Callable[[ResponderProvider], None]) -> None:
    """Register responders (what turns a caller's final transcript into a reply).

    ``register`` takes a :class:`voicehost.ResponderProvider`; the one chosen with
    ``[responder] provider = "<id>"`` gets its parsed ``[responder.<id>]`` table. The built-ins
    (``scripted``, ``webhook``) register from :mod:`voicehost.responders.builtin`.
    """


@hookspec
def register_conversation_providers(register: Callable[[ConversationProvider], None]) -> None:
    """Register speech-to-speech conversation providers (the caller's audio to one model, its
    audio back): call ``register(provider)`` once per :class:`voicehost.ConversationProvider`.
    The one chosen with ``[conversation] provider = "<id>"`` replaces the STT, responder and
    TTS of every call and gets its parsed ``[conversation.<id>]`` table."""


@hookspec
def register_turn_detectors(register: Callable[[TurnDetectorProvider], None]) -> None:
    """Register end-of-turn detectors (has the caller finished, or only paused?): call
    ``register(provider)`` once per :class:`voicehost.TurnDetectorProvider`. The one chosen
    with ``[turn] provider = "<id>"`` gets its parsed ``[turn.<id>]`` table (a subclass of
    :class:`voicehost.TurnConfig`) and is asked about the caller's audio after each final
    transcript of the STT pipeline (see :mod:`voicehost.contracts.turns`)."""


@hookspec
def register_tools(register: Callable[[Tool], None]) -> None:
    """Register tools a responder's model may call: call ``register(tool)`` once per
    :class:`voicehost.Tool`. Tool names are unique in the process (a name another plugin took,
    or anything but a ``Tool``, fails this plugin). The host hands every tool to the responder
    at start-up (``Responder.use_tools``); the responder decides which to offer its model."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``voicehost`` CLI (``@cli.command()``)."""
