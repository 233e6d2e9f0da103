"""The conversation loop: a :class:`~voicehost.server.CallHandler` that runs a responder on
every call and writes the call record.

Per call (all on the event loop, nothing blocking it):

* stream start → the call record is opened and the responder's greeting is spoken;
* provisional transcript (the caller's turn before it is confirmed; ``[server]
  preemptive_generation``) → the responder is asked at once and its first sentence
  synthesised into memory (:mod:`voicehost.conversation_preemptive`), nothing said or
  recorded; the final with the same text adopts it (the first sentence then plays without
  waiting for the TTS), a withdrawal or another text drops it;
* final transcript → recorded (role ``caller``, kind ``final``) and answered by
  ``responder.reply``, whose text is spoken **sentence by sentence**: each sentence is said
  as its own reply (its own mark) as soon as it is complete, while the responder goes on
  (:mod:`voicehost.conversation_speech`); the bot's text is recorded (kind ``greeting`` /
  ``reply``, at the time its first piece arrived) once it has played;
* key press → recorded (a ``dtmf`` event) and answered by ``responder.dtmf`` the same way;
* actions in a reply stream run in order, each once the text before it has played:
  :class:`~voicehost.contracts.SendDtmf` → ``call.send_dtmf`` (a ``send_dtmf`` event; the
  rest of the reply waits until the tones have played),
  :class:`~voicehost.contracts.Transfer` → ``call.transfer`` (a ``transfer`` event; a
  failure is logged and recorded, and the call goes on),
  :class:`~voicehost.contracts.HangUp` → ``call.hangup(reason)``; nothing after a transfer or
  a hang-up is read;
* tool uses (:class:`~voicehost.contracts.ToolUse`) → two event turns, ``tool_call``
  (``name(arguments)``) and ``tool_result`` (the result, ``error: …`` when it failed), and a
  ``kind="tool"`` turn in the history, in stream order with the bot's text; never spoken;
* a reply cut off by the caller speaking (the server's barge-in cancels what was queued) →
  the responder's stream is closed, the bot turn keeps only the sentences that played (what
  the caller heard; none: no turn), then a ``barge_in`` event; the rest of that reply (text
  and actions, a pending hang-up too) is dropped;
* call lifecycle events (ringing, answered, ended …, also of calls that never streamed) →
  ``store.record_event``; call end → the record's end time and reason;
* every answer is timed (:mod:`voicehost.conversation_timing`): the end of the caller's
  speech (the STT provider's optional ``on_speech_end``, else the final's arrival), the
  final, the responder's first text, the first bot audio. Once it is over the timings go to
  the caller's ``final`` turn in the records, to :mod:`voicehost.metrics` (turn latency,
  the responder's time to first text labelled ``responder_id``) and, with traces on
  (:mod:`voicehost.tracing`), to a ``turn`` span under the call's ``call`` span.

Responders see a :class:`~voicehost.contracts.CallContext` whose ``history`` holds every
earlier caller and bot turn of the call, key presses as ``kind="dtmf"`` turns and tool calls
as ``kind="tool"`` turns. Records are written in the order the turns happened.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import attrs

from voicehost.contracts import (
    CallContext,
    ConversationTurn,
    ReplyItem,
    Responder,
    SendDtmf,
    Transfer,
)
from voicehost.conversation_log import CallLog, LogEntry, TurnObserver, record_call_event
from voicehost.conversation_preemptive import PreemptiveReply
from voicehost.conversation_speech import Sentence, Speech
from voicehost.conversation_timing import Trigger, TurnTimer, observe
from voicehost.errors import VoicehostError
from voicehost.records import CallStore, TurnKind
from voicehost.server import Call, CallHandler
from voicehost.server.call_stt import FinalTiming
from voicehost.server.events import CallEvent
from voicehost.tracing import CallTrace, Tracing

log = logging.getLogger(__name__)

_STATE_KEY = "voicehost.conversation"


@attrs.define
class _Conversation:
    """Per-call state kept in ``call.state``: the responders' context, the history and
    records (``log``), the responder streams being spoken and the call's trace."""

    context: CallContext
    log: CallLog
    speeches: set[Speech] = attrs.field(factory=set)
    trace: CallTrace | None = None
    preemptive: PreemptiveReply | None = None  # the reply to the provisional transcript
    preemptive_history: int = 0  # the history's length when it was asked


class ResponderCallHandler(CallHandler):
    """Runs ``responder`` on every call; writes records to ``store`` when given.

    Args:
        responder: the process's responder (``ResponderProvider.create(config)``).
        store: the call record store, or None to keep no records.
        responder_id: the responder's provider id (the ``provider`` label of
            ``voicehost_responder_first_token_seconds``); default: the responder's class
            name.
        tracing: where the calls' and turns' spans go (traces on), or None.
    """

    def __init__(
        self,
        responder: Responder,
        store: CallStore | None = None,
        *,
        responder_id: str = "",
        tracing: Tracing | None = None,
    ) -> None:
        self.responder = responder
        self.store = store
        self.responder_id = responder_id or type(responder).__name__
        self.tracing = tracing
        #: told of every turn as it is written (``CallLog`` observers: the live monitor)
        self.turn_observers: list[TurnObserver] = []

    # --- CallHandler ---------------------------------------------------------------------

    async def on_call_start(self, call: Call) -> None:
        """Record the call's start and speak the responder's greeting (recorded as a
        ``greeting`` turn once it has played or been cut off)."""
        context = CallContext(
            call_sid=call.call_sid,
            stream_sid=call.stream_sid,
            from_number=call.from_,
            to_number=call.to,
            direction=call.direction,
            answered_by=call.answered_by,
        )
        log_ = CallLog(call.call_sid, self.store, context.history, self.turn_observers)
        conv = _Conversation(context, log_)
        if self.tracing is not None:
            conv.trace = self.tracing.start_call(
                call_sid=call.call_sid,
                stream_sid=call.stream_sid,
                direction=call.direction,
                started_at=getattr(call, "started_at", None),
            )
        call.state[_STATE_KEY] = conv
        if self.store is not None:
            self.store.start_call(
                call.call_sid, stream_sid=call.stream_sid, from_number=call.from_, to_number=call.to
            )
        timer = TurnTimer("greeting")
        greeting = self.responder.greeting(self._view(conv))
        await self._speak(call, conv, "greeting", greeting, timer)

    async def on_transcript(self, call: Call, text: str) -> None:
        """Record the caller's final transcript and speak the responder's reply to it (the
        responder sees the history without this transcript). Blank text is ignored. The
        turn's timings start from the final's arrival and the end of speech before it, as the
        call's STT session noted them (the ``<Gather>`` fallback's finals: from now)."""
        conv = self._conversation(call)
        heard = _final_timing(call, text)
        text = text.strip()
        if conv is None or not text:
            return
        early, conv.preemptive = conv.preemptive, None
        view = self._view(conv)  # history without the transcript being answered
        timer = _timer("speech", heard)
        turn = ConversationTurn("caller", text)
        timings = timer.timings(conv.log.ms_at)
        entry = conv.log.add("caller", "final", text, turn=turn, timings=timings)
        # prepared while the turn was ending, on the same history (no turn settled since)
        same = early is not None and len(view.history) == conv.preemptive_history
        if early is not None and early.text == text and same:
            timer.asked_at, timer.first_token_at = early.asked_at, early.first_token_at
            stream = early.adopt()
        else:
            if early is not None:
                await early.drop()
            timer.asked_at = time.monotonic()
            stream = self.responder.reply(view, text)
        await self._speak(call, conv, "reply", stream, timer, entry)

    async def on_provisional_transcript(self, call: Call, text: str | None) -> None:
        """The caller's turn as it stands before it is confirmed: ask the responder now
        (when it allows it: ``Responder.preemptive``) and hold its first sentence's audio
        (:class:`~voicehost.conversation_preemptive.PreemptiveReply`); nothing is said or
        recorded until :meth:`on_transcript` brings the same text. None (the caller went
        on) or another text drops what was prepared."""
        conv = self._conversation(call)
        if conv is None:
            return
        text = (text or "").strip()
        old = conv.preemptive
        if old is not None and old.text == text:
            return
        conv.preemptive = None
        if text and self.responder.preemptive and call.end_reason is None:
            view = self._view(conv)
            conv.preemptive = PreemptiveReply(call, text, self.responder.reply(view, text))
            conv.preemptive_history = len(view.history)
        if old is not None:
            await old.drop()

    async def on_speech_start(self, call: Call) -> None:
        """The server has already done the barge-in (cancelled what was queued): each reply
        it cut off keeps what the caller heard, and the barge-in is recorded."""
        conv = self._conversation(call)
        if conv is None:
            return
        for speech in list(conv.speeches):
            speech.barged_in()

    async def on_dtmf(self, call: Call, digit: str) -> None:
        """Record the key press (a ``dtmf`` event turn; a ``kind="dtmf"`` caller turn in the
        history) and speak the responder's answer to it (``responder.dtmf``, which sees the
        history without this key). ``digit`` is one key from a stream, maybe several from
        the ``<Gather>`` fallback."""
        conv = self._conversation(call)
        if conv is None or not digit:
            return
        view = self._view(conv)
        turn = ConversationTurn("caller", digit, kind="dtmf")
        conv.log.add("event", "dtmf", digit, turn=turn)
        timer = _timer("dtmf", None)
        await self._speak(call, conv, "reply", self.responder.dtmf(view, digit), timer)

    async def on_call_end(self, call: Call, reason: str) -> None:
        """Record the call's end and its ``reason`` (after every turn still waiting)."""
        conv = self._conversation(call)
        if conv is not None and conv.preemptive is not None:
            early, conv.preemptive = conv.preemptive, None
            await early.drop()
        if conv is not None:
            conv.log.close()
            if conv.trace is not None:
                conv.trace.end(reason)
        if self.store is not None and conv is not None:
            self.store.end_call(call.call_sid, reason)

    async def on_call_event(self, event: CallEvent) -> None:
        """Store a lifecycle event of a call (maybe one that never streamed); one the store
        refuses (an ``ended`` without a reason …) is logged and dropped."""
        record_call_event(self.store, event)

    # --- internals -----------------------------------------------------------------------

    @staticmethod
    def _conversation(call: Call) -> _Conversation | None:
        return call.state.get(_STATE_KEY)

    @staticmethod
    def _view(conv: _Conversation) -> CallContext:
        """A snapshot of the context for one responder call (``state`` is shared)."""
        return attrs.evolve(conv.context, history=list(conv.context.history))

    async def _speak(
        self,
        call: Call,
        conv: _Conversation,
        kind: TurnKind,
        stream: AsyncIterator[ReplyItem],
        timer: TurnTimer,
        entry: LogEntry | None = None,
    ) -> None:
        """Speak a responder stream sentence by sentence and run its actions, in order;
        record all of it, and report its timings (``timer``; the caller's final turn
        ``entry`` gets them in the records).

        The responder is read by its own task as fast as it produces (:class:`Speech`);
        each sentence is said once complete, with at most ``AHEAD`` queued behind the one
        playing; an action waits until the text before it has played, and after a
        :class:`SendDtmf` the reading waits until the tones have played. The reading is
        cancelled, closing the responder's stream, when the reply is cut off or the call
        ends. Returns once everything said has played (or was cut off).
        """
        speech = Speech(call, conv.log, kind, stream, timer)
        conv.speeches.add(speech)
        speech.start()
        try:
            while call.end_reason is None:
                item = await speech.next()
                if item is None:  # the end of the stream, or cut off
                    await speech.drain()
                    break
                if isinstance(item, Sentence):
                    if not await speech.say(item):
                        break
                    continue
                if not await speech.drain():  # an action: the text before it played first
                    break
                if isinstance(item, SendDtmf):
                    if not await self._press(call, conv, speech, item.digits):
                        break
                    speech.resume.set()
                elif isinstance(item, Transfer):
                    await self._transfer(call, conv, item.to)
                    break
                else:
                    await call.hangup(item.reason)
                    break
        finally:  # done, cut off, failed or the call ended: stop the responder, settle
            try:
                await speech.stop()
            finally:  # the call's end may cancel this task while it stops
                conv.speeches.discard(speech)
                self._report(conv, timer, entry)

    def _report(self, conv: _Conversation, timer: TurnTimer, entry: LogEntry | None) -> None:
        """An answer is over: its timings go to the metrics, the caller's final turn
        (``entry``) and the call's trace."""
        observe(timer, self.responder_id)
        if entry is not None:
            conv.log.set_timings(entry, timer.timings(conv.log.ms_at))
        if conv.trace is not None:
            latency = timer.turn_latency()
            first_token = None
            if timer.first_token_at is not None:
                first_token = round((timer.first_token_at - timer.asked_at) * 1000)
            conv.trace.turn(
                timer.start_at,
                timer.ended_at if timer.ended_at is not None else time.monotonic(),
                timer.stages(),
                {
                    "voicehost.turn.trigger": timer.trigger,
                    "voicehost.turn.latency_ms": None if latency is None else round(latency * 1e3),
                    "voicehost.turn.first_token_ms": first_token,
                    "voicehost.turn.cut_off": timer.cut_off,
                    "voicehost.responder": self.responder_id,
                },
            )

    async def _press(self, call: Call, conv: _Conversation, speech: Speech, digits: str) -> bool:
        """Play ``digits`` as DTMF tones (a ``send_dtmf`` event) and wait until they played.
        Returns False when the caller cut them off; keys the call cannot play are logged and
        skipped (True: the reply goes on)."""
        at_ms = conv.log.ms()
        try:
            reply = call.send_dtmf(digits)
        except (VoicehostError, ValueError) as exc:
            log.warning("call %s: cannot press %s (%s)", call, digits, exc)
            return True
        turn = ConversationTurn("bot", digits, kind="dtmf")
        conv.log.add("event", "send_dtmf", digits, at_ms, turn)
        return await speech.play_tones(reply)

    async def _transfer(self, call: Call, conv: _Conversation, to: str) -> None:
        """Hand the call to ``to`` (a ``transfer`` event). When the call cannot be
        transferred (no REST credentials, Twilio refused) that is logged and recorded as a
        second ``transfer`` event, ``failed: <why>``, and the call goes on."""
        conv.log.add("event", "transfer", to)
        try:
            await call.transfer(to)
        except VoicehostError as exc:
            log.warning("call %s: transfer to %s failed: %s; the call goes on", call, to, exc)
            conv.log.add("event", "transfer", f"failed: {exc}")

    async def aclose(self) -> None:
        """Close the responder, the record store and the tracing (exporting the spans still
        waiting) at server shutdown. Idempotent."""
        try:
            await self.responder.aclose()
        finally:
            if self.store is not None:
                await self.store.aclose()
            if self.tracing is not None:
                await asyncio.to_thread(self.tracing.shutdown)


def _final_timing(call: Call, text: str) -> FinalTiming | None:
    """The timing the call's STT session noted for the final ``text`` (None: no session, or
    a final not from it)."""
    transcription = getattr(call, "transcription", None)
    return transcription.take_final(text) if transcription is not None else None


def _timer(trigger: Trigger, heard: FinalTiming | None) -> TurnTimer:
    """A timer for an answer to a final (``heard``: its timing) or a key press (now)."""
    if heard is None:
        return TurnTimer(trigger, final_at=time.monotonic())
    return TurnTimer(trigger, final_at=heard.final_at, speech_end_at=heard.speech_end_at)


__all__ = ["ResponderCallHandler"]
