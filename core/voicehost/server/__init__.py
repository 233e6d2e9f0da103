"""The Twilio call server behind ``voicehost serve``.

Build an app with :func:`build_app`, give it a :class:`CallHandler` to act on calls, and run it
with the runner from :func:`make_runner` (``voicehost serve`` does, see
:mod:`voicehost.app.serve`). This package is the transport: it knows nothing of config files,
plugins, responders or records. Its live state (stream tokens, webhook call data, the
live-call registry) sits behind :class:`LiveCallState`; :class:`MemoryLiveState` is the
default.
"""

from voicehost.server.app import build_app, make_runner
from voicehost.server.call import Call
from voicehost.server.handler import CallHandler, GreetingHandler
from voicehost.server.live_state import CallRecord, LiveCallState, MemoryLiveState
from voicehost.server.playback import (
    PlaybackError,
    PlaybackQueueFull,
    Reply,
    ReplyStatus,
)
from voicehost.server.settings import ObservabilitySettings, ServerSettings, TwilioSettings
from voicehost.server.state import SERVER_KEY, Binding, CallServer

__all__ = [
    "SERVER_KEY",
    "Binding",
    "Call",
    "CallHandler",
    "CallRecord",
    "CallServer",
    "GreetingHandler",
    "LiveCallState",
    "MemoryLiveState",
    "ObservabilitySettings",
    "PlaybackError",
    "PlaybackQueueFull",
    "Reply",
    "ReplyStatus",
    "ServerSettings",
    "TwilioSettings",
    "build_app",
    "make_runner",
]
