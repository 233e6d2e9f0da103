"""The conversation loop: a :class:`~voicehost.server.CallHandler` that runs a responder on
every call and writes the call record.

Per call (all on the event loop, nothing blocking it):

* stream start → the call record is opened and the responder's greeting is spoken;
* final transcript → recorded (role ``caller``, kind ``final``), answered by
  ``responder.reply`` whose text is streamed straight into ``call.say`` (TTS starts on the
  first sentence); the bot's text is recorded (kind ``greeting`` / ``reply``, at the time its
  first piece arrived) as soon as the responder has finished producing it;
* a reply cut off by the caller speaking (the server's barge-in cancels it) → a ``barge_in``
  event, and a pending hang-up of that reply is dropped (the caller wanted to say something);
* :class:`~voicehost.responders.HangUp` from the responder → the call is hung up once the text
  before it has played;
* DTMF → a ``dtmf`` event; call end → the record's end time and reason.

Responders see a :class:`~voicehost.responders.CallContext` whose ``history`` holds every
earlier caller and bot turn of the call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import attrs

from voicehost.contracts import CallContext, ConversationTurn, HangUp, Responder
from voicehost.records import CallStore, TurnKind
from voicehost.server import Call, CallHandler, PlaybackError, Reply, ReplyStatus

log = logging.getLogger(__name__)

_STATE_KEY = "voicehost.conversation"


@attrs.define
class _Conversation:
    """Per-call state kept in ``call.state``."""

    context: CallContext
    t0: float = attrs.field(factory=time.monotonic)
    #: Replies queued or playing, with their kind; a barge-in is recorded once per reply.
    playing: dict[Reply, TurnKind] = attrs.field(factory=dict)
    barged: set[int] = attrs.field(factory=set)

    def ms(self) -> int:
        return round((time.monotonic() - self.t0) * 1000)


@attrs.define
class _BotTurn:
    """One bot utterance being produced: its text so far and whether it asked to hang up."""

    kind: TurnKind
    parts: list[str] = attrs.field(factory=list)
    started_ms: int | None = None
    hang_up: HangUp | None = None
    recorded: bool = False


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
        self._record(call, conv, "caller", "final", text, conv.ms())
        await self._speak(call, conv, "reply", self.responder.reply(view, text))

    async def on_speech_start(self, call: Call) -> None:
        """The server has already done the barge-in (cancelled what played); record it."""
        conv = self._conversation(call)
        if conv is None:
            return
        for reply, kind in list(conv.playing.items()):
            if reply.status is ReplyStatus.CANCELLED:
                self._record_barge_in(call, conv, reply, kind)

    async def on_dtmf(self, call: Call, digit: str) -> None:
        """Record the key press as a ``dtmf`` event turn."""
        conv = self._conversation(call)
        if conv is not None:
            self._record(call, conv, "event", "dtmf", digit, conv.ms())

    async def on_call_end(self, call: Call, reason: str) -> None:
        """Record the call's end and its ``reason``."""
        if self.store is not None and _STATE_KEY in call.state:
            self.store.end_call(call.call_sid, reason)

    # --- internals -----------------------------------------------------------------------

    @staticmethod
    def _conversation(call: Call) -> _Conversation | None:
        return call.state.get(_STATE_KEY)

    @staticmethod
    def _view(conv: _Conversation) -> CallContext:
        """A snapshot of the context for one responder call (``state`` is shared)."""
        return attrs.evolve(conv.context, history=list(conv.context.history))

    def _record(
        self, call: Call, conv: _Conversation, role: str, kind: TurnKind, text: str, at_ms: int
    ) -> None:
        if role in ("caller", "bot"):
            conv.context.history.append(ConversationTurn(role, text))  # type: ignore[arg-type]
        if self.store is not None:
            self.store.add_turn(call.call_sid, role, kind, text, at_ms)  # type: ignore[arg-type]

    def _record_barge_in(self, call: Call, conv: _Conversation, reply: Reply, kind: str) -> None:
        """Record once that the caller cut ``reply`` off. Called from ``on_speech_start`` or,
        whichever runs first, from the reply's own task: both run right after the server's
        barge-in, so now is the speech start."""
        if reply.id in conv.barged:
            return
        conv.barged.add(reply.id)
        self._record(call, conv, "event", "barge_in", f"{kind} cut off", conv.ms())

    def _record_bot(self, call: Call, conv: _Conversation, turn: _BotTurn) -> None:
        if turn.recorded or not turn.parts:
            return
        turn.recorded = True
        at_ms = turn.started_ms if turn.started_ms is not None else conv.ms()
        self._record(call, conv, "bot", turn.kind, "".join(turn.parts).strip(), at_ms)

    async def _speak(
        self,
        call: Call,
        conv: _Conversation,
        kind: TurnKind,
        stream: AsyncIterator[str | HangUp],
    ) -> None:
        """Speak a responder stream; record it; hang up after it when it asks to.

        The responder is read by its own task as fast as it produces (not at the pace the
        TTS consumes sentences), so its text is recorded as soon as it is complete. That
        task is cancelled, closing the responder's stream, when the reply is cut off or the
        call ends.
        """
        turn = _BotTurn(kind)
        pieces: asyncio.Queue[str | None] = asyncio.Queue()

        async def read() -> None:
            try:
                while (piece := await self._next_text(call, conv, turn, stream)) is not None:
                    pieces.put_nowait(piece)
            finally:
                pieces.put_nowait(None)
                await _aclose(stream)
                self._record_bot(call, conv, turn)

        reader = asyncio.get_running_loop().create_task(read(), name=f"responder-{kind}")
        status = ReplyStatus.FAILED
        reply: Reply | None = None
        try:
            first = await pieces.get()
            if first is None:  # nothing to say (maybe a bare hang-up)
                await reader
                if turn.hang_up is not None:
                    await call.hangup(turn.hang_up.reason)
                return

            async def text() -> AsyncIterator[str]:
                yield first
                while (piece := await pieces.get()) is not None:
                    yield piece

            source = text()
            try:
                reply = call.say(source)
                conv.playing[reply] = kind
            except PlaybackError as exc:
                log.warning("call %s: cannot speak the %s (%s)", call, kind, exc)
                async for _ in source:
                    pass
            else:
                try:
                    status = await reply
                except Exception as exc:
                    log.warning("call %s: the %s failed to play: %s", call, kind, exc)
                finally:
                    del conv.playing[reply]
                    await _aclose(source)
        finally:  # cut off, failed or the call ended: stop the responder, record its text
            if not reader.done():
                reader.cancel()
            await asyncio.wait([reader])  # never raises the reader's own cancellation
        if status is ReplyStatus.CANCELLED and reply is not None and call.end_reason is None:
            self._record_barge_in(call, conv, reply, kind)  # if on_speech_start did not yet
            return  # the caller interrupted: a pending hang-up is dropped
        if turn.hang_up is not None and call.end_reason is None:
            await call.hangup(turn.hang_up.reason)

    async def _next_text(
        self,
        call: Call,
        conv: _Conversation,
        turn: _BotTurn,
        stream: AsyncIterator[str | HangUp],
    ) -> str | None:
        """The next non-empty text piece of ``stream``; None at its end or at a HangUp.

        A responder that raises is logged and its reply ends there (the call goes on).
        """
        if turn.hang_up is not None:
            return None
        while True:
            try:
                item = await anext(stream)
            except StopAsyncIteration:
                return None
            except Exception:
                log.exception("call %s: the responder failed; the %s ends here", call, turn.kind)
                return None
            if isinstance(item, HangUp):
                turn.hang_up = item
                return None
            if not isinstance(item, str):
                log.warning("call %s: responder yielded %r, not text; ignored", call, item)
                continue
            if item:
                if turn.started_ms is None:
                    turn.started_ms = conv.ms()
                turn.parts.append(item)
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
