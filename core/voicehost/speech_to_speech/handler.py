"""The call handler of speech-to-speech mode: ``[conversation] provider = "<id>"`` gives
every call to that provider (:class:`~voicehost.speech_to_speech.call.SpeechToSpeechCall`)
instead of the STT → responder → TTS pipeline, and writes the call records as a cascaded call
does (caller and bot turns, tool calls, key presses, barge-ins, lifecycle events)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from voicehost.contracts import (
    CallContext,
    ConversationConfig,
    ConversationProvider,
    ConversationTurn,
    Tool,
)
from voicehost.conversation_log import CallLog, TurnObserver, record_call_event
from voicehost.records import CallStore
from voicehost.server import Call, CallHandler
from voicehost.server.events import CallEvent
from voicehost.speech_to_speech.call import SpeechToSpeechCall
from voicehost.speech_to_speech.tools import CallTools

log = logging.getLogger(__name__)

__all__ = ["SpeechToSpeechCallHandler"]

_STATE_KEY = "voicehost.speech_to_speech"


class SpeechToSpeechCallHandler(CallHandler):
    """Runs every call on a speech-to-speech conversation provider.

    Args:
        provider: the chosen :class:`~voicehost.ConversationProvider`.
        config: its parsed ``[conversation.<id>]`` table.
        tools: every tool plugins registered, by name (``config.tools`` picks from them).
        store: the call record store, or None to keep no records.

    Raises:
        ConfigError: ``config.tools`` names a tool no plugin registered, or offers
            ``transfer`` without targets.
    """

    def __init__(
        self,
        provider: ConversationProvider,
        config: ConversationConfig,
        tools: Mapping[str, Tool] | None = None,
        store: CallStore | None = None,
    ) -> None:
        self.provider = provider
        self.config = config
        self.tools = CallTools(config, tools or {})
        self.store = store
        #: told of every turn as it is written (``CallLog`` observers: the live monitor)
        self.turn_observers: list[TurnObserver] = []
        #: the live calls' conversations, by call SID (benchmarks and tests read them)
        self.calls: dict[str, SpeechToSpeechCall] = {}

    async def on_call_start(self, call: Call) -> None:
        """Open the record and run the conversation until the call ends."""
        context = CallContext(
            call_sid=call.call_sid,
            stream_sid=call.stream_sid,
            from_number=call.from_,
            to_number=call.to,
            direction=call.direction,
            answered_by=call.answered_by,
        )
        call_log = CallLog(call.call_sid, self.store, context.history, self.turn_observers)
        if self.store is not None:
            self.store.start_call(
                call.call_sid, stream_sid=call.stream_sid, from_number=call.from_, to_number=call.to
            )
        conversation = SpeechToSpeechCall(
            call, self.provider, self.config, self.tools, call_log, context
        )
        call.state[_STATE_KEY] = (conversation, call_log)
        self.calls[call.call_sid] = conversation
        await conversation.run()

    async def on_dtmf(self, call: Call, digit: str) -> None:
        """Record the caller's key press (the model hears the call's audio only)."""
        entry = call.state.get(_STATE_KEY)
        if entry is not None and digit:
            entry[1].add("event", "dtmf", digit, turn=ConversationTurn("caller", digit, "dtmf"))

    async def on_call_end(self, call: Call, reason: str) -> None:
        """Close the conversation; record the call's end and its reason."""
        entry = call.state.get(_STATE_KEY)
        self.calls.pop(call.call_sid, None)
        if entry is not None:
            conversation, call_log = entry
            try:
                await conversation.close()
            finally:
                call_log.close()
        if self.store is not None and entry is not None:
            self.store.end_call(call.call_sid, reason)

    async def on_call_event(self, event: CallEvent) -> None:
        """Store a lifecycle event of a call (maybe one that never streamed)."""
        record_call_event(self.store, event)

    async def aclose(self) -> None:
        """Close the record store at server shutdown (the provider is closed with the
        others). Idempotent."""
        if self.store is not None:
            await self.store.aclose()
