"""The Twilio call server behind ``voicehost serve``.

Build an app with :func:`build_app`, give it a :class:`CallHandler` to act on calls, and run it
with aiohttp (``voicehost serve`` does, see :mod:`voicehost.server.commands`).
"""

from voicehost.server.app import SERVER_KEY, Binding, CallServer, build_app
from voicehost.server.call import Call
from voicehost.server.handler import CallHandler, GreetingHandler
from voicehost.server.playback import (
    PlaybackError,
    PlaybackQueueFull,
    Reply,
    ReplyStatus,
)
from voicehost.server.settings import ServerSettings

__all__ = [
    "SERVER_KEY",
    "Binding",
    "Call",
    "CallHandler",
    "CallServer",
    "GreetingHandler",
    "PlaybackError",
    "PlaybackQueueFull",
    "Reply",
    "ReplyStatus",
    "ServerSettings",
    "build_app",
]
