"""The conversation loop: a :class:`~voicehost.server.CallHandler` that runs a responder on
every call and writes the call record.

Per call (all on the event loop, nothing blocking it):

* stream start → the call record is opened and the responder's greeting is spoken;
* final transcript → recorded (role ``caller``, kind ``final``), answered by
  ``responder.reply`` whose text is streamed straight into ``call.say`` (TTS starts on the
  first sentence); the bot's text is recorded (kind ``greeting`` / ``reply``, at the time its
  first piece arrived) as soon as the responder has finished producing it (or reached an
  action);
* key press → recorded (a ``dtmf`` event) and answered by ``responder.dtmf`` the same way;
* actions in a reply stream run in order, each once the text before it has played:
  :class:`~voicehost.contracts.SendDtmf` → ``call.send_dtmf`` (a ``send_dtmf`` event; the
  rest of the reply waits until the tones have played),
  :class:`~voicehost.contracts.Transfer` → ``call.transfer`` (a ``transfer`` event; a
  failure is logged and recorded, and the call goes on),
  :class:`~voicehost.contracts.HangUp` → ``call.hangup(reason)``; nothing after a transfer or
  a hang-up is read;
* a reply cut off by the caller speaking (the server's barge-in cancels it) → a ``barge_in``
  event, and the rest of that reply (text and actions, a pending hang-up too) is dropped;
* call lifecycle events (ringing, answered, ended …, also of calls that never streamed) →
  ``store.record_event``; call end → the record's end time and reason.

Responders see a :class:`~voicehost.contracts.CallContext` whose ``history`` holds every
earlier caller and bot turn of the call, key presses as ``kind="dtmf"`` turns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import attrs

from voicehost.contracts import (
    Action,
    CallContext,
    ConversationTurn,
    HangUp,
    ReplyItem,
    Responder,
    SendDtmf,
    Transfer,
)
from voicehost.errors import VoicehostError
from voicehost.records import CallStore, TurnKind
from voicehost.server import Call, CallHandler, PlaybackError, Reply, ReplyStatus
from voicehost.server.events import CallEvent

log = logging.getLogger(__name__)

_STATE_KEY = "voicehost.conversation"


@attrs.define
class _Conversation:
    """Per-call state kept in ``call.state``."""

    context: CallContext
    t0: float = attrs.field(factory=time.monotonic)
    #: Replies (speech or tones) queued or playing, with what they are; a barge-in is
    #: recorded once per reply.
    playing: dict[Reply, str] = attrs.field(factory=dict)
    barged: set[int] = attrs.field(factory=set)

    def ms(self) -> int:
        return round((time.monotonic() - self.t0) * 1000)


@attrs.define
class _BotText:
    """The bot's text up to the next action: its pieces and when the first came (ms)."""

    kind: TurnKind
    parts: list[str] = attrs.field(factory=list)
    started_ms: int | None = None


class ResponderCallHandler(CallHandler):
    """Runs ``responder`` on every call; writes records to ``store`` when given.

    Args:
        responder: the process's responder (``ResponderProvider.create(config)``).
        store: the call record store, or None to keep no records.
    """

    def __init__(self, responder: Responder, store: CallStore | None = None) -> None:
        self.responder = responder
        self.store = store

    # --- CallHandler ---------------------------------------------------------------------

    async def on_call_start(self, call: Call) -> None:
        """Record the call's start and speak the responder's greeting (recorded as a
        ``greeting`` turn once it has played or been cut off)."""
        conv = _Conversation(
            CallContext(
                call_sid=call.call_sid,
                stream_sid=call.stream_sid,
                from_number=call.from_,
                to_number=call.to,
                direction=call.direction,
                answered_by=call.answered_by,
            )
        )
        call.state[_STATE_KEY] = conv
        if self.store is not None:
            self.store.start_call(
                call.call_sid, stream_sid=call.stream_sid, from_number=call.from_, to_number=call.to
            )
        await self._speak(call, conv, "greeting", self.responder.greeting(self._view(conv)))

    async def on_transcript(self, call: Call, text: str) -> None:
        """Record the caller's final transcript and speak the responder's reply to it (the
        responder sees the history without this transcript). Blank text is ignored."""
        conv = self._conversation(call)
        text = text.strip()
        if conv is None or not text:
            return
        view = self._view(conv)  # history without the transcript being answered
        self._record(
            call, conv, "caller", "final", text, conv.ms(), ConversationTurn("caller", text)
        )
        await self._speak(call, conv, "reply", self.responder.reply(view, text))

    async def on_speech_start(self, call: Call) -> None:
        """The server has already done the barge-in (cancelled what played); record it."""
        conv = self._conversation(call)
        if conv is None:
            return
        for reply, what in list(conv.playing.items()):
            if reply.status is ReplyStatus.CANCELLED:
                self._record_barge_in(call, conv, reply, what)

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
        self._record(call, conv, "event", "dtmf", digit, conv.ms(), turn)
        await self._speak(call, conv, "reply", self.responder.dtmf(view, digit))

    async def on_call_end(self, call: Call, reason: str) -> None:
        """Record the call's end and its ``reason``."""
        if self.store is not None and _STATE_KEY in call.state:
            self.store.end_call(call.call_sid, reason)

    async def on_call_event(self, event: CallEvent) -> None:
        """Store a lifecycle event of a call (maybe one that never streamed); one the store
        refuses (an ``ended`` without a reason …) is logged and dropped."""
        if self.store is None:
            return
        try:
            self.store.record_event(
                event.call_sid,
                event.kind,
                reason=event.reason,
                answered_by=event.answered_by,
                direction=event.direction,
                from_number=event.from_,
                to_number=event.to,
                at=event.at,
            )
        except ValueError as exc:
            log.warning("call %s: call event %s not recorded: %s", event.call_sid, event.kind, exc)

    # --- internals -----------------------------------------------------------------------

    @staticmethod
    def _conversation(call: Call) -> _Conversation | None:
        return call.state.get(_STATE_KEY)

    @staticmethod
    def _view(conv: _Conversation) -> CallContext:
        """A snapshot of the context for one responder call (``state`` is shared)."""
        return attrs.evolve(conv.context, history=list(conv.context.history))

    def _record(
        self,
        call: Call,
        conv: _Conversation,
        role: str,
        kind: TurnKind,
        text: str,
        at_ms: int,
        turn: ConversationTurn | None = None,
    ) -> None:
        """Store one turn; append ``turn`` (what responders see of it) to the history."""
        if turn is not None:
            conv.context.history.append(turn)
        if self.store is not None:
            self.store.add_turn(call.call_sid, role, kind, text, at_ms)  # type: ignore[arg-type]

    def _record_barge_in(self, call: Call, conv: _Conversation, reply: Reply, what: str) -> None:
        """Record once that the caller cut ``reply`` off. Called from ``on_speech_start`` or,
        whichever runs first, from the reply's own task: both run right after the server's
        barge-in, so now is the speech start."""
        if reply.id in conv.barged:
            return
        conv.barged.add(reply.id)
        self._record(call, conv, "event", "barge_in", f"{what} cut off", conv.ms())

    def _record_bot(self, call: Call, conv: _Conversation, text: _BotText) -> None:
        """Record the bot text produced so far (if any) and start a new one."""
        if not text.parts:
            return
        said = "".join(text.parts).strip()
        at_ms = text.started_ms if text.started_ms is not None else conv.ms()
        text.parts, text.started_ms = [], None
        if said:
            self._record(call, conv, "bot", text.kind, said, at_ms, ConversationTurn("bot", said))

    async def _speak(
        self, call: Call, conv: _Conversation, kind: TurnKind, stream: AsyncIterator[ReplyItem]
    ) -> None:
        """Speak a responder stream and run its actions, in order; record all of it.

        The responder is read by its own task as fast as it produces (not at the pace the
        TTS consumes sentences), so its text is recorded as soon as it is complete; after a
        :class:`SendDtmf` the reading waits until the tones have played. That task is
        cancelled, closing the responder's stream, when the reply is cut off or the call
        ends.
        """
        text = _BotText(kind)
        items: asyncio.Queue[ReplyItem | None] = asyncio.Queue()
        resume = asyncio.Event()

        async def read() -> None:
            try:
                while (item := await self._next_item(call, conv, text, stream)) is not None:
                    if not isinstance(item, str):
                        self._record_bot(call, conv, text)  # the text before the action
                    items.put_nowait(item)
                    if isinstance(item, HangUp | Transfer):
                        return
                    if isinstance(item, SendDtmf):
                        resume.clear()
                        await resume.wait()
            finally:
                items.put_nowait(None)
                self._record_bot(call, conv, text)
                await _aclose(stream)

        reader = asyncio.get_running_loop().create_task(read(), name=f"responder-{kind}")
        cut: tuple[Reply, str] | None = None  # what the caller cut off
        try:
            item = await items.get()
            while item is not None and call.end_reason is None:
                if isinstance(item, str):
                    status, reply, item = await self._say_text(call, conv, kind, item, items)
                    if status is ReplyStatus.CANCELLED:
                        cut = (reply, kind) if reply is not None else None
                        break
                elif isinstance(item, SendDtmf):
                    status, reply = await self._press(call, conv, item.digits)
                    if status is ReplyStatus.CANCELLED:
                        cut = (reply, "send_dtmf") if reply is not None else None
                        break
                    resume.set()
                    item = await items.get()
                elif isinstance(item, Transfer):
                    await self._transfer(call, conv, item.to)
                    break
                else:
                    await call.hangup(item.reason)
                    break
        finally:  # cut off, failed or the call ended: stop the responder, record its text
            if not reader.done():
                reader.cancel()
            await asyncio.wait([reader])  # never raises the reader's own cancellation
        if cut is not None and call.end_reason is None:
            self._record_barge_in(call, conv, *cut)  # if on_speech_start did not yet

    async def _say_text(
        self,
        call: Call,
        conv: _Conversation,
        kind: TurnKind,
        first: str,
        items: asyncio.Queue[ReplyItem | None],
    ) -> tuple[ReplyStatus, Reply | None, ReplyItem | None]:
        """Speak ``first`` and the text pieces after it in ``items`` as one reply, until an
        action or the end. Returns ``(status, reply, the action or None that ended the
        text)``; after ``CANCELLED`` the last is None and ``items`` is left as it is."""
        ended: list[ReplyItem | None] = []

        async def pieces() -> AsyncIterator[str]:
            yield first
            while isinstance(piece := await items.get(), str):
                yield piece
            ended.append(piece)

        source = pieces()
        status, reply = ReplyStatus.FAILED, None
        try:
            reply = call.say(source)
        except PlaybackError as exc:
            log.warning("call %s: cannot speak the %s (%s)", call, kind, exc)
            async for _ in source:
                pass
        else:
            conv.playing[reply] = kind
            try:
                status = await reply
            except Exception as exc:
                log.warning("call %s: the %s failed to play: %s", call, kind, exc)
            finally:
                del conv.playing[reply]
                await _aclose(source)
        if status is ReplyStatus.CANCELLED:
            return status, reply, None
        if not ended:  # it failed part-way: skip the rest of this text
            while isinstance(item := await items.get(), str):
                pass
            ended.append(item)
        return status, reply, ended[0]

    async def _press(
        self, call: Call, conv: _Conversation, digits: str
    ) -> tuple[ReplyStatus, Reply | None]:
        """Play ``digits`` as DTMF tones (a ``send_dtmf`` event) and wait until they played.
        A call that cannot play them is logged: ``(FAILED, None)``."""
        at_ms = conv.ms()
        try:
            reply = call.send_dtmf(digits)
        except (VoicehostError, ValueError) as exc:
            log.warning("call %s: cannot press %s (%s)", call, digits, exc)
            return ReplyStatus.FAILED, None
        turn = ConversationTurn("bot", digits, kind="dtmf")
        self._record(call, conv, "event", "send_dtmf", digits, at_ms, turn)
        conv.playing[reply] = "send_dtmf"
        try:
            return await reply, reply
        except Exception as exc:
            log.warning("call %s: the keys %s failed to play: %s", call, digits, exc)
            return ReplyStatus.FAILED, reply
        finally:
            del conv.playing[reply]

    async def _transfer(self, call: Call, conv: _Conversation, to: str) -> None:
        """Hand the call to ``to`` (a ``transfer`` event). When the call cannot be
        transferred (no REST credentials, Twilio refused) that is logged and recorded as a
        second ``transfer`` event, ``failed: <why>``, and the call goes on."""
        self._record(call, conv, "event", "transfer", to, conv.ms())
        try:
            await call.transfer(to)
        except VoicehostError as exc:
            log.warning("call %s: transfer to %s failed: %s; the call goes on", call, to, exc)
            self._record(call, conv, "event", "transfer", f"failed: {exc}", conv.ms())

    async def _next_item(
        self, call: Call, conv: _Conversation, text: _BotText, stream: AsyncIterator[ReplyItem]
    ) -> ReplyItem | None:
        """The next action or non-empty text piece of ``stream`` (added to ``text``); None
        at its end. A responder that raises is logged and its reply ends there (the call
        goes on); an item that is neither text nor an action is logged and skipped."""
        while True:
            try:
                item = await anext(stream)
            except StopAsyncIteration:
                return None
            except Exception:
                log.exception("call %s: the responder failed; the %s ends here", call, text.kind)
                return None
            if isinstance(item, Action):
                return item
            if not isinstance(item, str):
                log.warning("call %s: responder yielded %r, not text or an action", call, item)
                continue
            if item:
                if text.started_ms is None:
                    text.started_ms = conv.ms()
                text.parts.append(item)
                return item

    async def aclose(self) -> None:
        """Close the responder and the record store (at server shutdown). Idempotent."""
        try:
            await self.responder.aclose()
        finally:
            if self.store is not None:
                await self.store.aclose()


async def _aclose(stream: object) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # a responder failing while closing must not end the call
            log.debug("closing a responder stream failed", exc_info=True)


__all__ = ["ResponderCallHandler"]
