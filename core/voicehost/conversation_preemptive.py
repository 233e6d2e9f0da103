"""Preemptive generation: the reply to a caller's turn prepared before the turn is confirmed.

The transport announces the caller's turn as it stands before it ends
(``CallHandler.on_provisional_transcript``: the STT's early final, or finals the end-of-turn
detector is still deciding). A :class:`PreemptiveReply` then asks the responder at once, reads
its stream up to the first complete sentence, and has the call synthesise that sentence into
memory (``call.synthesize_ahead``). Nothing reaches the caller, the history or the records:

* when the final transcript comes with the same text, the conversation *adopts* it: the
  responder's stream goes on from where it was read (:meth:`PreemptiveReply.adopt`), the
  caller's turn and the reply are recorded as usual, and the first sentence plays the held
  audio without waiting for the TTS;
* when the caller goes on (the announcement is withdrawn), or the final's text differs, or
  the call ends, it is *dropped* (:meth:`PreemptiveReply.drop`): the responder's stream is
  closed and the held audio thrown away, unheard and unrecorded.

As in LiveKit Agents' ``preemptive_generation``, the responder may be asked more often than
it answers. Reading stops at the first sentence, an action or a tool use; a responder whose
``reply`` acts on the world before its first text (``Responder.preemptive`` False: tools with
side effects) is never asked early.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from voicehost.contracts import Action, ToolUse
from voicehost.conversation_log import close_responder_stream
from voicehost.server import Call
from voicehost.server.prefetch import Prefetch
from voicehost.text import first_clause, split_sentences

log = logging.getLogger("voicehost.conversation")

__all__ = ["PreemptiveReply"]


class PreemptiveReply:
    """A responder's reply to ``text`` read ahead, and its first sentence synthesised.

    Args:
        call: the call (its ``synthesize_ahead`` holds the audio).
        text: the provisional transcript it answers (stripped).
        stream: ``responder.reply(view, text)``, not yet read.

    Attributes:
        asked_at: when the responder was asked, ``time.monotonic()`` s.
        first_token_at: when its first text came, or None.
        held: the synthesis of what the speech will say first (the first sentence, or its
            first clause); None: not reached yet, the stream began with an action, or the
            call cannot hold audio.
    """

    def __init__(self, call: Call, text: str, stream: AsyncIterator[Any]) -> None:
        self.call = call
        self.text = text
        self.asked_at = time.monotonic()
        self.first_token_at: float | None = None
        self.held: Prefetch | None = None
        self._stream = stream
        self._items: list[Any] = []  # read from the stream, not yet handed on
        self._ended = False  # the stream ended (or failed) while read ahead
        self._error: Exception | None = None  # how it failed, raised again to the speech
        self._reader = asyncio.get_running_loop().create_task(
            self._read_ahead(), name="responder-preemptive"
        )

    async def adopt(self) -> AsyncIterator[Any]:
        """The whole reply stream for the conversation to speak: what was read ahead, then
        the rest. Closing it closes the responder's stream."""
        try:
            await asyncio.shield(self._reader)
        except Exception:  # the read ahead failed: the items read still count
            log.debug("call %s: the preemptive read failed", self.call, exc_info=True)
        try:
            for item in self._items:
                yield item
            self._items.clear()
            if self._error is not None:
                raise self._error  # the speech logs it and ends the reply, as unread
            if not self._ended:
                async for item in self._stream:
                    yield item
        finally:
            await close_responder_stream(self._stream)

    async def drop(self) -> None:
        """Forget it: stop reading, close the responder's stream, drop the held audio."""
        self._reader.cancel()
        if self.held is not None:
            self.held.abort()
        # the reader's own end (cancelled, failed) is no news; this task's cancellation is
        await asyncio.gather(self._reader, return_exceptions=True)
        await close_responder_stream(self._stream)

    async def _read_ahead(self) -> None:
        """Read up to the first complete sentence (or an action, a tool use, the end), then
        hold that sentence's audio."""
        buffer = ""
        try:
            while True:
                try:
                    item = await anext(self._stream)
                except StopAsyncIteration:
                    self._ended = True
                    break
                self._items.append(item)
                if isinstance(item, Action | ToolUse):
                    return
                if not isinstance(item, str):
                    continue
                if self.first_token_at is None and item.strip():
                    self.first_token_at = time.monotonic()
                buffer += item
                done, _rest = split_sentences(buffer)
                if done:
                    self._hold(done[0])
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # raised again when adopted (the speech logs it)
            self._ended = True
            self._error = exc
            return
        if buffer.strip():
            self._hold(buffer.strip())

    def _hold(self, sentence: str) -> None:
        """Hold the audio of what the speech will say first: the sentence, or its first
        clause when it says it in two pieces (``first_clause``)."""
        self.held = self.call.synthesize_ahead(first_clause(sentence)[0])
