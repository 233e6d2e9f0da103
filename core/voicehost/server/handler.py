"""The application's side of a call: what the server tells the app while a call runs.

Subclass :class:`CallHandler` and override what you need; every method is a no-op by default.
The server calls each method in its own task, so a slow method (a responder waiting on an
LLM) never holds up the call's audio, and an exception is logged and the call goes on.
Order: ``on_call_start`` first, ``on_call_end`` last and exactly once; tasks still running
when the call ends are cancelled before ``on_call_end`` runs.

Example: a greeting and an echo bot::

    class Echo(CallHandler):
        async def on_call_start(self, call):
            call.say("Hello! Say something.")

        async def on_transcript(self, call, text):
            await call.say(f"You said: {text}")   # awaiting waits until it has played

    app = build_app(settings, stt=..., tts=..., handler=Echo())
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voicehost.server.call import Call
    from voicehost.server.events import CallEvent

__all__ = ["CallHandler", "GreetingHandler", "default_handler"]


class CallHandler:
    """Per-call callbacks; one instance serves every call (keep per-call state on ``call``,
    e.g. ``call.state``)."""

    async def on_call_start(self, call: Call) -> None:
        """The stream started (token accepted, STT connecting): greet with ``call.say``."""

    async def on_partial(self, call: Call, text: str) -> None:
        """An interim transcript of what the caller is saying (full text so far)."""

    async def on_transcript(self, call: Call, text: str) -> None:
        """A final transcript of one caller utterance: reply with ``call.say``."""

    async def on_provisional_transcript(self, call: Call, text: str | None) -> None:
        """The caller's turn as it stands before it is confirmed (``[server]
        preemptive_generation``): the transcript :meth:`on_transcript` will get if the
        caller stays silent (the STT's early final; finals the end-of-turn detector is still
        deciding). Prepare a reply if you like (``call.synthesize_ahead``), say nothing yet.
        None: withdrawn (the caller went on); another text replaces it."""

    async def on_speech_start(self, call: Call) -> None:
        """The caller started speaking (barge-in has already cleared playback when on)."""

    async def on_dtmf(self, call: Call, digit: str) -> None:
        """The caller pressed a key: ``digit`` is one of ``0``-``9``, ``*``, ``#``,
        ``A``-``D`` on a stream; from the ``<Gather>`` fallback it is every key pressed
        before the gather finished (``"123#"``)."""

    async def on_call_end(self, call: Call, reason: str) -> None:
        """The call ended. ``reason`` is one of :data:`voicehost.server.events.END_REASONS`
        (``caller-hangup``, ``bot-hangup``, ``transferred``, ``max-duration``, ``idle``,
        ``shutdown``, ``error`` …) or the reason given to ``call.hangup(reason)``."""

    async def on_call_event(self, event: CallEvent) -> None:
        """A lifecycle event (:class:`~voicehost.server.events.CallEvent`): ``initiated``,
        ``ringing``, ``answered`` (with ``answered_by``) or ``ended`` (with its reason),
        for every call, including those that never stream (rejected, busy, no-answer,
        notify calls). Each kind comes once per call; ``ended`` comes after
        ``on_call_end`` for a call that had one."""


class GreetingHandler(CallHandler):
    """Says ``greeting`` when each call starts; the default when ``[server] greeting`` is
    set and no other handler is given."""

    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    async def on_call_start(self, call: Call) -> None:
        if self.greeting:
            call.say(self.greeting)


def default_handler(greeting: str) -> CallHandler:
    """The handler when the app gives none: a :class:`GreetingHandler` saying ``greeting``
    (``[server] greeting``), or a :class:`CallHandler` that does nothing when it is empty."""
    return GreetingHandler(greeting) if greeting else CallHandler()
