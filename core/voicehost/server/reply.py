"""A queued reply of a stream's playback (:mod:`voicehost.server.playback`), its status,
and the errors of queueing one."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterable, Awaitable, Generator
from typing import Any

from voicehost.errors import VoicehostError

__all__ = ["PlaybackError", "PlaybackQueueFull", "Reply", "ReplyStatus"]


class PlaybackError(VoicehostError):
    """A reply could not be queued: no TTS provider (for text), or the call has ended."""


class PlaybackQueueFull(PlaybackError):
    """``say`` was called with ``max_queued_replies`` replies already waiting or playing."""


class ReplyStatus(enum.Enum):
    """Where a reply stands. Awaiting a ``FAILED`` reply raises the provider's error;
    ``CANCELLED`` (barge-in, hang-up, socket closed) is an ordinary outcome, not an error."""

    PENDING = "pending"
    PLAYED = "played"
    CANCELLED = "cancelled"
    FAILED = "failed"


class _StreamClosed(Exception):
    """The socket went away mid-reply: the reply is cancelled, not failed."""


class Reply:
    """One queued reply. ``await reply`` waits until it finished and returns its
    :class:`ReplyStatus`; it raises the provider's error when synthesis failed.

    Attributes:
        id: 1, 2, … per stream.
        source: what plays: the text, the text stream, or μ-law 8 kHz bytes (raw audio).
        text: the text, or None when it is streamed in (``AsyncIterable[str]``) or raw audio.
        label: what a raw-audio reply is (e.g. ``"dtmf 1234#"``), for logs; None for text.
        mark_name: the ``mark`` that follows its audio (``reply-<id>``).
        frames_sent: 20 ms frames sent so far.
        first_audio_at: when its first frame was handed to the socket (the playback's
            clock: ``time.monotonic`` unless injected), s; None before.
        mark_echoed: True when Twilio echoed the mark (False: finished by timeout).
        raw: ``source`` is μ-law 8 kHz (bytes, or an async iterable of bytes chunks).
        progress_frames: a progress mark follows every this many frames (0: none).
        heard_ms / heard_at: the audio (ms from the reply's start) confirmed played by the
            last echoed progress mark, and when that echo came (the playback's clock, s).
    """

    def __init__(
        self,
        reply_id: int,
        source: str | AsyncIterable[str] | bytes | AsyncIterable[bytes],
        label: str | None = None,
        *,
        raw: bool = False,
        progress_frames: int = 0,
    ) -> None:
        self.id = reply_id
        self.source = source
        self.text = source if isinstance(source, str) else None
        self.label = label
        self.raw = raw or isinstance(source, bytes)
        self.progress_frames = progress_frames
        self.mark_name = f"reply-{reply_id}"
        self.frames_sent = 0
        self.first_audio_at: float | None = None
        self.mark_echoed = False
        self.heard_ms = 0
        self.heard_at: float | None = None
        self._future: asyncio.Future[ReplyStatus] = asyncio.get_running_loop().create_future()
        self._future.add_done_callback(_consume_exception)

    @property
    def status(self) -> ReplyStatus:
        """Current status."""
        if not self._future.done():
            return ReplyStatus.PENDING
        if self._future.exception() is not None:
            return ReplyStatus.FAILED
        return self._future.result()

    @property
    def error(self) -> BaseException | None:
        """The provider's error of a ``FAILED`` reply."""
        return self._future.exception() if self._future.done() else None

    def done(self) -> bool:
        """True once played, cancelled or failed."""
        return self._future.done()

    def wait(self) -> Awaitable[ReplyStatus]:
        """The same as ``await reply``, as an awaitable for ``asyncio.wait_for``."""
        return asyncio.shield(self._future)

    def __await__(self) -> Generator[Any, None, ReplyStatus]:
        return asyncio.shield(self._future).__await__()

    def _resolve(self, status: ReplyStatus) -> None:
        if not self._future.done():
            self._future.set_result(status)

    def _fail(self, exc: BaseException) -> None:
        if not self._future.done():
            self._future.set_exception(exc)

    def __repr__(self) -> str:
        return f"<Reply {self.id} {self.label or self.text!r} {self.status.value}>"


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # the failure is logged by the playback; nobody may await it
