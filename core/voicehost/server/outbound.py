"""The outbound side of one Media Streams socket: an ordered send queue with a byte bound.

Everything voicehost sends to Twilio (``media``, ``mark``, ``clear``) goes through one
:class:`OutboundChannel`, written by one task, so messages keep their order and a slow socket
never blocks the code that produces them. The channel knows how many bytes wait unsent (its
own queue plus the transport's write buffer); over ``limit`` the stream is closed with 1013,
as the seed does with ``ws.bufferedAmount`` > 1 MiB (Twilio stopped reading).

Counted in :mod:`voicehost.metrics`: every ``media`` message written
(``voicehost_media_frames_total{direction="outbound"}``) and every overflow
(``voicehost_outbound_backlog_closes_total``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable

import attrs

from voicehost import metrics

log = logging.getLogger(__name__)

__all__ = ["OutboundChannel", "OutboundMessage"]


@attrs.define
class OutboundMessage:
    """One queued text frame. ``kind`` is the Twilio event (``media``/``mark``/``clear``);
    ``tag`` is the mark name for a ``mark``."""

    kind: str
    text: str
    tag: str = ""


class OutboundChannel:
    """Ordered, bounded sender for one socket.

    Args:
        send_text: coroutine writing one text frame (``ws.send_str``).
        write_buffer_size: bytes the transport holds unsent (``transport.get_write_buffer_size``).
        limit: bytes (queued + transport) over which :meth:`send` fails and ``on_overflow`` runs.
        on_overflow: called once when the limit is passed (closes the socket with 1013).
    """

    def __init__(
        self,
        send_text: Callable[[str], Awaitable[None]],
        write_buffer_size: Callable[[], int],
        limit: int,
        on_overflow: Callable[[int], None],
    ) -> None:
        self._send_text = send_text
        self._write_buffer_size = write_buffer_size
        self.limit = limit
        self._on_overflow = on_overflow
        self._queue: collections.deque[OutboundMessage] = collections.deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self.sent_messages = 0
        self._media = metrics.media_tally()

    @property
    def closed(self) -> bool:
        """True once closed or overflowed: sends are refused."""
        return self._closed

    @property
    def buffered_bytes(self) -> int:
        """Bytes queued here plus bytes the transport has not yet written."""
        try:
            transport = self._write_buffer_size()
        except Exception:  # transport gone
            transport = 0
        return self._queued_bytes + transport

    def start(self) -> None:
        """Start the writer task."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="outbound")

    def send(self, message: OutboundMessage, *, front: bool = False) -> bool:
        """Queue ``message`` (at the head with ``front``). Never blocks.

        Returns:
            False when the channel is closed, or the buffer is over the limit (the socket is
            then being closed with 1013 and nothing more is queued).
        """
        if self._closed:
            return False
        buffered = self.buffered_bytes + len(message.text)
        if buffered > self.limit:
            self._closed = True
            log.warning("outbound buffer %d bytes over the %d-byte limit", buffered, self.limit)
            metrics.count_backlog_close()
            self._on_overflow(buffered)
            return False
        if front:
            self._queue.appendleft(message)
        else:
            self._queue.append(message)
        self._queued_bytes += len(message.text)
        self._wakeup.set()
        return True

    def purge(self, kinds: frozenset[str] = frozenset({"media", "mark"})) -> list[OutboundMessage]:
        """Remove queued, not yet written messages of ``kinds``; returns them in order."""
        kept: collections.deque[OutboundMessage] = collections.deque()
        dropped: list[OutboundMessage] = []
        for message in self._queue:
            (dropped if message.kind in kinds else kept).append(message)
        self._queue = kept
        self._queued_bytes = sum(len(m.text) for m in kept)
        return dropped

    async def _run(self) -> None:
        try:
            while True:
                while not self._queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                message = self._queue.popleft()
                self._queued_bytes -= len(message.text)
                await self._send_text(message.text)
                self.sent_messages += 1
                if message.kind == "media":
                    self._media.frames_out += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # socket closed under us: the receive loop ends the call
            log.debug("outbound writer stopped: %s", exc)
            self._closed = True

    async def close(self) -> None:
        """Stop the writer; queued messages are dropped."""
        self._closed = True
        self._queue.clear()
        self._queued_bytes = 0
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
