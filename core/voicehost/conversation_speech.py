"""Speaking one responder stream sentence by sentence, and keeping what the caller heard.

:class:`Speech` reads a responder's reply stream in its own task, as fast as the responder
produces it, and cuts the text into sentences (:func:`voicehost.text.split_sentences`); the
conversation handler (:mod:`voicehost.conversation`) says each sentence as its own reply
(``call.say(sentence)``, its own mark) as soon as it is complete, with at most :data:`AHEAD`
sentences queued behind the one playing. The stream's first sentence is said in two pieces
when it is long and has a clause end (:func:`voicehost.text.first_clause`: "We are open Monday
to Friday," then the rest), so the first audio comes after the clause's synthesis, not the
whole sentence's.

What the bot said is kept per *segment* (its text up to the next action or tool use): the
segment takes its place in the call's history and records when its first sentence comes, and
gets its final text once every sentence of it has played. A caller who barges in cancels the
sentences not yet played (the server's barge-in, or the end of the call): the segment then
keeps only the sentences whose reply PLAYED — what the caller heard — and is dropped when
there are none. Caller speech while the responder is between two sentences (a slow model, a
tool running; nothing playing) cuts the reply off the same way, barge-in being on. A sentence
that could not be spoken (no TTS, a TTS error) counts as said, as the text has always been
recorded.

Their turns go through the call's :class:`~voicehost.conversation_log.CallLog` (history and
records, in order). The speech notes its times in its
:class:`~voicehost.conversation_timing.TurnTimer` (the responder's first text, the first
sentence said, the first audio, the end).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import attrs

from voicehost.contracts import Action, ConversationTurn, HangUp, SendDtmf, ToolUse, Transfer
from voicehost.conversation_log import CallLog, LogEntry, close_responder_stream
from voicehost.conversation_timing import TurnTimer
from voicehost.records import TurnKind
from voicehost.server import Call, PlaybackError, PlaybackQueueFull, ReplyStatus
from voicehost.text import first_clause, split_sentences

log = logging.getLogger("voicehost.conversation")  # the conversation's logger: one to configure

#: Sentences queued behind the one playing (older replies are awaited before more are queued,
#: so a reply never meets ``max_queued_replies``).
AHEAD = 2
#: Reply statuses of a sentence that counts as said (FAILED: it was meant to be heard).
_SAID = (ReplyStatus.PLAYED, ReplyStatus.FAILED)


@attrs.define(eq=False)
class Sentence:
    """One sentence of a reply, said as its own reply.

    Attributes:
        text: the sentence, stripped.
        segment: the bot segment it belongs to.
        reply: what ``call.say`` returned, once said.
        unsaid: it could not be queued (no TTS provider, …): counts as said.
        dropped: it could not be queued because the call had ended: not said.
    """

    text: str
    segment: _Segment
    reply: Any = None
    unsaid: bool = False
    dropped: bool = False  # not said: the call had ended

    @property
    def resolved(self) -> bool:
        if self.unsaid or self.dropped:
            return True
        return self.reply is not None and self.reply.status is not _PENDING

    @property
    def said(self) -> bool:
        return self.unsaid or (self.reply is not None and self.reply.status in _SAID)


_PENDING = ReplyStatus.PENDING


@attrs.define(eq=False)
class _Segment:
    """The bot's text up to the next action or tool use: its sentences and its turn."""

    entry: LogEntry
    sentences: list[Sentence] = attrs.field(factory=list)
    closed: bool = False  # the reader moved past it
    settled: bool = False

    def heard(self) -> str:
        """The sentences said, up to the first that was not (cut off, or never said)."""
        heard: list[str] = []
        for sentence in self.sentences:
            if not sentence.said:
                break
            heard.append(sentence.text)
        return " ".join(heard)


class Speech:
    """One responder stream being spoken on a call.

    Args:
        call: the call.
        log: the call's history and records.
        kind: ``"greeting"`` or ``"reply"`` (the records' turn kind of its text).
        stream: the responder's reply stream.
        timer: where its times are noted (a new one, ``trigger`` from ``kind``, when None).

    The conversation handler calls :meth:`start`, then takes items with :meth:`next`
    (sentences, and actions with the text before them :meth:`drain`-ed), says sentences
    with :meth:`say`, and ends with :meth:`stop`.
    """

    def __init__(
        self,
        call: Call,
        log: CallLog,
        kind: TurnKind,
        stream: AsyncIterator[Any],
        timer: TurnTimer | None = None,
    ):
        self.call = call
        self.log = log
        self.kind = kind
        self.stream = stream
        self.timer = timer or TurnTimer("greeting" if kind == "greeting" else "speech")
        #: Set once the caller cut it off (or the call ended while it played).
        self.cut = asyncio.Event()
        #: Set by the handler when the tones of a SendDtmf have played (the reader waits).
        self.resume = asyncio.Event()
        self._items: asyncio.Queue[Sentence | Action | None] = asyncio.Queue()
        self._segment: _Segment | None = None
        self._open: list[_Segment] = []
        self._playing: collections.deque[tuple[Sentence, asyncio.Task[None]]] = collections.deque()
        self._tones: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._spoke = False  # a sentence was queued
        self._waiting = 0  # sentences read, not yet handed to say()
        self._warned = False
        self._first = True  # no sentence read yet (the first is said in two pieces)

    # --- the handler's side --------------------------------------------------------------

    def start(self) -> None:
        """Start reading the responder's stream."""
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self._read(), name=f"responder-{self.kind}")

    async def next(self) -> Sentence | Action | None:
        """The next sentence or action of the stream; None at its end or once cut off."""
        if self.cut.is_set():
            return None
        get = asyncio.ensure_future(self._items.get())
        cut = asyncio.ensure_future(self.cut.wait())
        try:
            done, _ = await asyncio.wait({get, cut}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            get.cancel()
            cut.cancel()
        if get in done and not self.cut.is_set():
            return get.result()
        return None

    async def say(self, sentence: Sentence) -> bool:
        """Queue ``sentence`` (``call.say``) once fewer than ``1 + AHEAD`` sentences are
        unsettled. Returns False once cut off. A sentence the call cannot speak is logged
        (once) and counts as said."""
        self._waiting -= 1
        while len(self._playing) > AHEAD:
            if not await self._settle_oldest():
                return False
        while not self.cut.is_set():
            try:
                sentence.reply = self.call.say(sentence.text)
            except PlaybackQueueFull:
                if self._playing:  # the queue is shared: wait for one of ours
                    if not await self._settle_oldest():
                        return False
                    continue
                self._unsaid(sentence, "the reply queue is full")
            except PlaybackError as exc:
                self._unsaid(sentence, str(exc))
            else:
                self._spoke = True
                self.timer.said()
                watch = asyncio.get_running_loop().create_task(self._watch(sentence))
                self._playing.append((sentence, watch))
            return True
        return False

    async def drain(self) -> bool:
        """Wait until every sentence said so far has played; False once cut off."""
        while self._playing:
            if not await self._settle_oldest():
                return False
        return not self.cut.is_set()

    async def play_tones(self, reply: Any) -> bool:
        """Wait until the DTMF tones ``reply`` played; False when the caller cut them off."""
        self._tones = reply
        try:
            status = await reply
        except Exception as exc:
            log.warning("call %s: the keys failed to play: %s", self.call, exc)
            status = ReplyStatus.FAILED
        self.timer.audio(getattr(reply, "first_audio_at", None))
        if status is ReplyStatus.CANCELLED:
            self.cut_off()  # "send_dtmf cut off"
            return False
        self._tones = None
        return not self.cut.is_set()

    def barged_in(self) -> None:
        """The caller started speaking (the server did its barge-in). Cut this speech off
        (record what was heard and the ``barge_in`` event, stop the responder) when the
        barge-in cancelled a reply of it, or, barge-in being on, when it has begun speaking
        and is not done: the responder is between two sentences (a slow model, a tool
        running), as a streamed reply that waits for its text is cut off."""
        replies = [sentence.reply for sentence, _ in self._playing]
        if self._tones is not None:
            replies.append(self._tones)
        if any(reply.status is ReplyStatus.CANCELLED for reply in replies):
            self.cut_off()
        elif self._spoke and getattr(self.call, "barge_in_enabled", True):
            reading = self._reader is not None and not self._reader.done()
            if reading or self._waiting:
                self.cut_off()

    def cut_off(self) -> None:
        """Stop here (idempotent): the responder's stream is closed, each segment keeps what
        the caller heard; a ``barge_in`` event is recorded unless the call has ended."""
        if self.cut.is_set():
            return
        self.cut.set()
        if self._reader is not None:
            self._reader.cancel()
        for segment in list(self._open):
            self._settle(segment)
        if self.call.end_reason is None:
            self.timer.cut_off = True
            tones = self._tones is not None and self._tones.status is ReplyStatus.CANCELLED
            self.log.add("event", "barge_in", f"{'send_dtmf' if tones else self.kind} cut off")

    async def stop(self) -> None:
        """The end: stop the reader (closing the responder's stream) and settle what is left
        (what played of it), even when the call's end cancels the handler meanwhile."""
        try:
            if self._reader is not None:
                if not self._reader.done():
                    self._reader.cancel()
                await asyncio.wait([self._reader])  # never raises the reader's cancellation
        finally:
            for sentence, watch in self._playing:
                watch.cancel()
                self.timer.audio(getattr(sentence.reply, "first_audio_at", None))
            if self._tones is not None:
                self.timer.audio(getattr(self._tones, "first_audio_at", None))
            for segment in list(self._open):
                self._settle(segment)
            self.timer.ended_at = time.monotonic()

    # --- internals -----------------------------------------------------------------------

    def _unsaid(self, sentence: Sentence, why: str) -> None:
        if self.call.end_reason is not None:
            sentence.dropped = True
        else:
            if not self._warned:
                self._warned = True
                log.warning("call %s: cannot speak the %s (%s)", self.call, self.kind, why)
            sentence.unsaid = True
        self._try_settle(sentence.segment)

    async def _watch(self, sentence: Sentence) -> None:
        try:
            status = await sentence.reply
        except Exception as exc:
            log.warning("call %s: the %s failed to play: %s", self.call, self.kind, exc)
            status = ReplyStatus.FAILED
        self.timer.audio(getattr(sentence.reply, "first_audio_at", None))
        if status is ReplyStatus.CANCELLED:
            self.cut_off()
        else:
            self._try_settle(sentence.segment)

    async def _settle_oldest(self) -> bool:
        _, watch = self._playing.popleft()
        await asyncio.wait([watch])
        return not self.cut.is_set()

    def _try_settle(self, segment: _Segment) -> None:
        if segment.closed and not segment.settled:
            if all(sentence.resolved for sentence in segment.sentences):
                self._settle(segment)

    def _settle(self, segment: _Segment) -> None:
        if segment.settled:
            return
        segment.settled = True
        self._open.remove(segment)
        self.log.settle(segment.entry, segment.heard())

    # --- the reader ----------------------------------------------------------------------

    async def _read(self) -> None:
        """Read the stream to its end (or a HangUp/Transfer): sentences and actions go to
        the handler in order, tool uses are recorded; after a SendDtmf, wait for
        :attr:`resume`. A responder that raises is logged and its reply ends there."""
        buffer, started = "", None
        try:
            while (item := await self._next_item()) is not None:
                if isinstance(item, str):
                    if started is None and item.strip():
                        started = self.log.ms()
                        self.timer.token()
                    buffer += item
                    done, buffer = split_sentences(buffer)
                    for text in done:
                        self._sentence(text, started)
                    if done:
                        started = self.log.ms() if buffer.strip() else None
                        # let the handler hand the sentence to the TTS now, before parsing
                        # deltas that arrived together with it
                        await asyncio.sleep(0)
                    continue
                if buffer.strip():
                    self._sentence(buffer.strip(), started)
                buffer, started = "", None
                self._close_segment()
                if isinstance(item, ToolUse):
                    self._tool(item)
                    continue
                self._items.put_nowait(item)
                if isinstance(item, HangUp | Transfer):
                    return
                if isinstance(item, SendDtmf):
                    self.resume.clear()
                    await self.resume.wait()
            if buffer.strip():
                self._sentence(buffer.strip(), started)
        finally:
            self.timer.responder_done()
            self._close_segment()
            self._items.put_nowait(None)
            await close_responder_stream(self.stream)

    async def _next_item(self) -> str | Action | ToolUse | None:
        """The next item of the stream; None at its end or when the responder failed."""
        while True:
            try:
                item = await anext(self.stream)
            except StopAsyncIteration:
                return None
            except Exception:
                log.exception(
                    "call %s: the responder failed; the %s ends here", self.call, self.kind
                )
                return None
            if isinstance(item, str | Action | ToolUse):
                return item
            log.warning(
                "call %s: responder yielded %r, not text, an action or a ToolUse", self.call, item
            )

    def _sentence(self, text: str, at_ms: int | None) -> None:
        if self._first:
            self._first = False
            clause, rest = first_clause(text)
            if rest:
                self._sentence(clause, at_ms)
                self._sentence(rest, at_ms)
                return
        segment = self._segment
        if segment is None:
            at = self.log.ms() if at_ms is None else at_ms
            segment = self._segment = _Segment(self.log.reserve(self.kind, text, at))
            self._open.append(segment)
        sentence = Sentence(text, segment)
        segment.sentences.append(sentence)
        if len(segment.sentences) > 1:
            self.log.revise(segment.entry, " ".join(s.text for s in segment.sentences))
        self._waiting += 1
        self._items.put_nowait(sentence)

    def _close_segment(self) -> None:
        segment, self._segment = self._segment, None
        if segment is not None:
            segment.closed = True
            self._try_settle(segment)

    def _tool(self, use: ToolUse) -> None:
        """A tool call: two event turns (``tool_call``, ``tool_result``), one tool turn in
        the history."""
        at_ms = self.log.ms()
        call = f"{use.name}({use.arguments})"
        self.log.add("event", "tool_call", call, at_ms, ConversationTurn.for_tool(use))
        result = f"error: {use.result}" if use.error else use.result
        self.log.add("event", "tool_result", result, at_ms)


__all__ = ["AHEAD", "Sentence", "Speech"]
