"""Synthesis of the next queued reply while the current one plays, so that sentences spoken
as separate replies follow each other without a gap.

Without it the next reply's TTS request starts only once the current reply's audio has all
been sent, about ``lead_ms`` (100 ms) before it ends at Twilio; a TTS whose time to first
audio is longer than that (Piper on a busy CPU: 200-900 ms) leaves the caller in silence at
every sentence boundary. A :class:`Prefetch` starts the TTS stream of the reply after the one
playing and buffers its chunks in memory (one sentence: a few hundred kB at most); the
playback then reads them as if they came from the vendor. Cancelling it (barge-in, hang-up)
closes the TTS stream, and so the vendor request, at once.

The same class holds the audio of a reply not yet queued
(:meth:`~voicehost.server.playback.Playback.synthesize_ahead`: preemptive generation), which
plays when a reply of the same text is said, or is aborted unheard.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["HeldSyntheses", "Prefetch"]

_DONE = object()


class Prefetch:
    """Reads ``stream`` (the TTS audio of ``reply``) into memory in a background task.

    Args:
        reply: the queued reply it is for (any object; compared by identity).
        stream: the provider's ``synthesize`` iterator.
        on_first_audio: called with the time of the first non-empty chunk (the TTS's time to
            first audio, for metrics).
        clock: the playback's monotonic clock, s.
        aclose: closes ``stream`` (bounded), in the task's ``finally``.
    """

    def __init__(
        self,
        reply: Any,
        stream: AsyncIterator[bytes],
        *,
        on_first_audio: Callable[[float], None],
        clock: Callable[[], float],
        aclose: Callable[[AsyncIterator[bytes]], Awaitable[None]],
    ) -> None:
        self.reply = reply
        self._chunks: asyncio.Queue[Any] = asyncio.Queue()
        self._on_first_audio = on_first_audio
        self._clock = clock
        self._aclose = aclose
        self._on_abort: list[Callable[[], object]] = []
        self._closed = False
        self._stream = stream
        self._started = False  # the task began reading (its finally closes the stream)
        self._task = asyncio.get_running_loop().create_task(self._fill(stream), name="tts-prefetch")

    @property
    def closed(self) -> bool:
        """True once it was aborted, cancelled, or its stream read to the end."""
        return self._closed

    def on_abort(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` (once) when it is aborted or cancelled."""
        self._on_abort.append(callback)

    def _aborting(self) -> None:
        self._closed = True
        callbacks, self._on_abort = self._on_abort, []
        for callback in callbacks:
            callback()

    async def _fill(self, stream: AsyncIterator[bytes]) -> None:
        self._started = True
        first = True
        try:
            async for chunk in stream:
                if first and chunk:
                    first = False
                    self._on_first_audio(self._clock())
                self._chunks.put_nowait(chunk)
            self._chunks.put_nowait(_DONE)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # raised again to the playback when it reads this far
            self._chunks.put_nowait(exc)
        finally:
            await self._aclose(stream)

    async def stream(self) -> AsyncIterator[bytes]:
        """The buffered audio, then what is still coming; raises the provider's error where
        the synthesis failed. Closing it cancels the synthesis."""
        try:
            while (item := await self._chunks.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            await self.cancel()

    def abort(self) -> None:
        """Stop the synthesis (its task closes the TTS stream); does not wait."""
        self._task.cancel()
        self._aborting()
        if not self._started:  # cancelled before it ran: nobody else closes the stream
            self._started = True
            self._closer = asyncio.get_running_loop().create_task(self._aclose(self._stream))

    async def cancel(self) -> None:
        """Stop the synthesis (closing the TTS stream) and wait for it. Idempotent."""
        if not self._task.done():
            self._task.cancel()
        self._aborting()
        try:
            await self._task
        except (asyncio.CancelledError, Exception) as exc:
            log.debug("prefetch ended: %r", exc)
        if not self._started:
            self._started = True
            await self._aclose(self._stream)


class HeldSyntheses:
    """The syntheses one playback started before their reply was queued (preemptive
    generation): held by text until a reply of that text is said, then by reply id until it
    plays; at most ``limit`` unclaimed (the oldest is aborted).

    Args:
        limit: unclaimed syntheses held at once.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._by_text: dict[str, Prefetch] = {}
        self._by_reply: dict[int, Prefetch] = {}

    def hold(self, text: str, held: Prefetch) -> None:
        """Hold ``held`` (the synthesis of ``text``), replacing one of the same text."""
        old = self._by_text.pop(text, None)
        if old is not None:
            old.abort()
        while len(self._by_text) >= self.limit:
            self._by_text.pop(next(iter(self._by_text))).abort()
        self._by_text[text] = held

        def forget() -> None:
            if self._by_text.get(text) is held:
                del self._by_text[text]

        held.on_abort(forget)

    def claim(self, text: str, reply_id: int) -> bool:
        """Reply ``reply_id`` says ``text``: it takes the synthesis held for it, if any."""
        held = self._by_text.pop(text, None)
        if held is None:
            return False
        self._by_reply[reply_id] = held
        return True

    def unclaim(self, reply_id: int, text: str) -> None:
        """The reply was not queued after all: its synthesis is held by text again."""
        held = self._by_reply.pop(reply_id, None)
        if held is not None:
            self._by_text[text] = held

    def take(self, reply_id: int) -> Prefetch | None:
        """The synthesis reply ``reply_id`` plays (None: it claimed none)."""
        return self._by_reply.pop(reply_id, None)

    def drop(self, reply_id: int) -> None:
        """Reply ``reply_id`` resolved: its synthesis, if still unplayed, is aborted."""
        held = self._by_reply.pop(reply_id, None)
        if held is not None:
            held.abort()

    async def close(self) -> None:
        """Cancel every synthesis held (the call ended)."""
        held = [*self._by_text.values(), *self._by_reply.values()]
        self._by_text.clear()
        self._by_reply.clear()
        for synthesis in held:
            await synthesis.cancel()
