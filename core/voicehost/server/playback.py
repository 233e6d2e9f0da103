"""Reply playback on one stream: a bounded queue, TTS → μ-law frames paced in real time,
marks, and barge-in.

How a reply plays (wire-protocols.md §1.4, §1.5):

1. The TTS provider's stream (any chunk sizes, its declared output format) is converted to
   μ-law 8 kHz with :class:`voicehost.audio.AudioConverter` and cut into 160-byte (20 ms)
   frames by :class:`voicehost.audio.Framer`; the last partial frame is padded with μ-law
   silence (0xFF).
2. Each frame goes out as one ``media`` message, paced against an absolute monotonic schedule:
   ``play_end`` is when Twilio will have played everything sent so far; a frame is sent once
   ``play_end - now <= lead`` and advances ``play_end`` by exactly 20 ms, so late wake-ups never
   accumulate (no drift, however long the reply) and at most ``lead`` ms of audio is ever
   queued at Twilio (so a ``clear`` cuts the bot off at once; pipecat #366). Only when Twilio
   really ran dry (``play_end < now``: the TTS was slower than real time) is the schedule
   re-anchored at ``now``.
3. A ``mark`` named ``reply-<n>`` follows the last frame. The reply is finished when Twilio
   echoes the mark, or ``mark_timeout_ms`` after its audio should have finished playing.
   The next queued text reply starts synthesising as soon as the one before it has sent its
   first frame (:class:`~voicehost.server.prefetch.Prefetch`), so replies, e.g. the sentences of
   one answer, play back to back without a gap even when the TTS takes longer to start than
   the lead.

Barge-in (:meth:`Playback.barge_in`): queued replies are dropped, the playing reply's task is
cancelled, which closes its TTS iterator (``aclose``) and so the vendor request, unsent frames
are purged and ``clear`` is sent ahead of everything else. All of these replies resolve as
:attr:`ReplyStatus.CANCELLED`, never as errors.

Pause (:meth:`Playback.pause`): ``clear`` goes out at once and no more frames are sent, but
nothing is dropped: the frames Twilio had not played yet (the lead) and those not yet
written are kept with the marks still due; :meth:`Playback.resume` sends them again and goes
on where it stopped, :meth:`Playback.barge_in` drops them. The call pauses when the caller
starts speaking over the bot and decides a moment later whether it was a real interruption
or a back-channel (:mod:`voicehost.server.voice_activity`).

Raw audio (:meth:`Playback.play_audio`, e.g. DTMF tones from :mod:`voicehost.dtmf`) is a reply
without TTS: already μ-law 8 kHz, it takes steps 1–3 from the framing on, in the same queue.
:meth:`Playback.play_stream` does the same for μ-law arriving in chunks (a speech-to-speech
model's audio) and can send *progress marks* (``reply-<n>@<ms>``) every ``progress_ms`` of
audio, so :meth:`Playback.played_ms` knows how much of it the caller has heard when they cut
in (OpenAI's ``conversation.item.truncate`` takes that as ``audio_end_ms``).

Metrics (:mod:`voicehost.metrics`): each frame's pacing lateness (the time it was handed to
the socket minus the later of its schedule, ``play_end - lead``, and the moment its audio
arrived from the TTS: a wake-up that came late counts, a TTS slower than real time does not),
the TTS provider's time to first audio of every text reply (synthesis asked → first non-empty
chunk), and failed syntheses (``voicehost_vendor_errors_total{kind="synthesis"}``).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import math
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

from voicehost import metrics
from voicehost.audio import AudioConverter, Framer
from voicehost.config_model import ProviderConfig, default_config
from voicehost.contracts import MULAW_8K, SpeechProvider
from voicehost.server.outbound import OutboundChannel, OutboundMessage
from voicehost.server.prefetch import HeldSyntheses, Prefetch
from voicehost.server.protocol import clear_message, mark_message, media_message
from voicehost.server.reply import (
    PlaybackError,
    PlaybackQueueFull,
    Reply,
    ReplyStatus,
    _StreamClosed,
)

log = logging.getLogger(__name__)

__all__ = [
    "FRAME_BYTES",
    "FRAME_S",
    "Playback",
    "PlaybackError",
    "PlaybackQueueFull",
    "Reply",
    "ReplyStatus",
]

FRAME_BYTES = 160  # one 20 ms frame of μ-law 8 kHz
FRAME_S = 0.02
#: Syntheses held by :meth:`Playback.synthesize_ahead` at once (each one sentence).
MAX_AHEAD = 2


class Playback:
    """The reply queue and player of one stream.

    Args:
        channel: the socket's outbound channel.
        stream_sid: Twilio stream SID put in every message.
        provider / config: the TTS provider and its parsed config (None: ``say`` refuses).
        lead_ms: audio kept queued at Twilio ahead of its playhead (ms).
        mark_timeout_ms: wait for a mark echo this long past the reply's expected end (ms).
        max_queued: replies accepted and not yet sent (the playing one included).
        clock / sleep: monotonic clock (s) and sleep, injectable for tests.
    """

    def __init__(
        self,
        channel: OutboundChannel,
        stream_sid: str,
        provider: SpeechProvider | None,
        config: ProviderConfig | None = None,
        *,
        lead_ms: int = 100,
        mark_timeout_ms: int = 2000,
        max_queued: int = 8,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.channel = channel
        self.stream_sid = stream_sid
        self.provider = provider
        self.config = config if config is not None else default_config(provider)
        self.lead_s = lead_ms / 1000
        self.mark_timeout_s = mark_timeout_ms / 1000
        self.max_queued = max_queued
        self._clock = clock
        self._sleep = sleep
        self._ids = itertools.count(1)
        self._queue: collections.deque[Reply] = collections.deque()
        self._wakeup = asyncio.Event()
        self._active: Reply | None = None
        self._active_task: asyncio.Task[None] | None = None
        self._awaiting_mark: dict[str, tuple[Reply, asyncio.TimerHandle]] = {}
        self._play_end = 0.0
        self._closed = False
        self._worker: asyncio.Task[None] | None = None
        self._taken: set[int] = set()  # replies handed over by take_queued, left unresolved
        self._progress: dict[str, tuple[Reply, int]] = {}  # progress mark → (reply, ms)
        self._prefetch: Prefetch | None = None  # the next text reply, synthesising
        self._held_syntheses = HeldSyntheses(MAX_AHEAD)  # synthesize_ahead's
        self._gate = asyncio.Event()  # cleared while paused
        self._gate.set()
        self._recent: collections.deque[OutboundMessage] = collections.deque(maxlen=16)
        self._stash: list[OutboundMessage] | None = None  # while paused: to send on resume
        self._held: dict[str, Reply] = {}  # marks due when paused
        self._media = metrics.media_tally()
        #: monotonic send time of every media frame (for pacing checks and benchmarks)
        self.frame_times: list[float] | None = None

    # --- public ----------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Replies accepted and not yet fully sent (the playing one included)."""
        return len(self._queue) + (self._active is not None)

    @property
    def speaking(self) -> bool:
        """True while a reply is being sent or its audio may still be playing at Twilio."""
        return (
            self._active is not None
            or bool(self._queue)
            or bool(self._awaiting_mark)
            or self._stash is not None
            or self._play_end > self._clock()
        )

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume` or :meth:`barge_in`."""
        return self._stash is not None

    def pause(self) -> bool:
        """Stop talking now without dropping anything: send ``clear`` ahead of everything,
        keep the audio Twilio had not played (the last ``lead`` of it, by the schedule) and
        what was not written yet, and hold the marks still due; no frame goes out until
        :meth:`resume` (which sends it all again) or :meth:`barge_in` (which drops it).
        Returns False (and sends nothing) when nothing was playing or queued; True when
        paused (or already paused)."""
        if self._stash is not None:
            return True
        if not self.speaking:
            return False
        now = self._clock()
        unplayed = math.ceil(max(0.0, self._play_end - now) / FRAME_S - 1e-6)
        resend = list(self._recent)[len(self._recent) - min(unplayed, len(self._recent)) :]
        written_marks = [
            OutboundMessage("mark", mark_message(self.stream_sid, name), name)
            for name in self._awaiting_mark
        ]
        purged = self.channel.purge()
        purged_marks = {m.tag for m in purged if m.kind == "mark"}
        self._stash = resend + [m for m in written_marks if m.tag not in purged_marks] + purged
        for name, (reply, handle) in list(self._awaiting_mark.items()):
            handle.cancel()
            self._held[name] = reply
        self._awaiting_mark.clear()
        self._progress.clear()  # marks Twilio echoes on ``clear`` were not played
        self.channel.send(OutboundMessage("clear", clear_message(self.stream_sid)), front=True)
        self._play_end = now
        self._recent.clear()
        self._gate.clear()
        return True

    def resume(self) -> bool:
        """Go on after :meth:`pause`: what was kept is sent again, in order, then the
        playing reply goes on. Returns False when not paused."""
        stash, self._stash = self._stash, None
        if stash is None:
            return False
        now = self._clock()
        self._play_end = max(self._play_end, now)
        for message in stash:
            if not self.channel.send(message):
                break
            if message.kind == "media":
                self._play_end += FRAME_S
                self._recent.append(message)
            elif message.kind == "mark" and message.tag in self._held:
                self._await_mark(self._held.pop(message.tag), message.tag)
        for name, reply in self._held.items():  # (none normally: every held mark was sent)
            self._await_mark(reply, name)
        self._held.clear()
        self._gate.set()
        return True

    def say(self, text: str | AsyncIterable[str]) -> Reply:
        """Queue a reply: a whole text, or text arriving in pieces (spoken sentence by
        sentence through the provider's ``synthesize_stream``).

        Raises:
            PlaybackQueueFull: ``max_queued`` replies already wait or play.
            PlaybackError: no TTS provider is configured, or the call has ended.
        """
        if self._closed:
            raise PlaybackError("the call has ended; nothing more can be said")
        if self.provider is None:
            raise PlaybackError("no TTS provider is configured ([tts] provider)")
        reply = Reply(next(self._ids), text)
        held = isinstance(text, str) and self._held_syntheses.claim(text, reply.id)
        try:
            reply = self._enqueue(reply)
        except PlaybackQueueFull:
            if held:  # not queued: it stays held for the next try
                self._held_syntheses.unclaim(reply.id, text)  # type: ignore[arg-type]
            raise
        if held:
            reply.wait().add_done_callback(lambda _: self._held_syntheses.drop(reply.id))
        return reply

    def synthesize_ahead(self, text: str) -> Prefetch | None:
        """Start synthesising ``text`` into memory now; the next :meth:`say` of exactly
        this text plays that audio instead of asking the TTS then (preemptive generation).
        At most :data:`MAX_AHEAD` are held (the oldest is dropped). ``abort()`` the handle to
        drop it. None when there is no TTS provider or the call has ended."""
        if self._closed or self.provider is None or not text.strip():
            return None
        held = self._synthesis(text, text)
        self._held_syntheses.hold(text, held)
        return held

    def play_audio(self, ulaw: bytes | bytearray | memoryview, *, label: str = "audio") -> Reply:
        """Queue raw audio (μ-law 8 kHz mono, e.g. :func:`voicehost.dtmf.dtmf_ulaw`) as a
        reply: FIFO with the spoken ones, counted in ``max_queued``, no TTS provider needed.
        It is sent in paced 20 ms frames (a partial last frame padded with silence) and
        followed by a mark, like speech; empty audio plays nothing and sends no mark.
        ``Reply.text`` is None, ``Reply.source`` the bytes, ``Reply.label`` ``label``.

        Raises:
            ValueError: ``ulaw`` is not bytes-like.
            PlaybackQueueFull: ``max_queued`` replies already wait or play.
            PlaybackError: the call has ended.
        """
        if not isinstance(ulaw, bytes | bytearray | memoryview):
            raise ValueError(f"audio must be μ-law bytes, got {type(ulaw).__name__}")
        if self._closed:
            raise PlaybackError("the call has ended; no more audio can be played")
        return self._enqueue(Reply(next(self._ids), bytes(ulaw), label))

    def play_stream(
        self, chunks: AsyncIterable[bytes], *, label: str = "stream", progress_ms: int = 0
    ) -> Reply:
        """Queue μ-law 8 kHz mono arriving in chunks of any length (a speech-to-speech
        model's audio deltas) as one reply: each frame is sent as soon as it is complete and
        due, paced like speech; the reply ends (and its mark is sent) when ``chunks`` ends.
        With ``progress_ms`` (a multiple of 20) a progress mark follows every
        ``progress_ms`` of audio, for :meth:`played_ms`. Closing ``chunks`` is the caller's
        business; barge-in ``aclose()``-s it.

        Raises:
            ValueError: ``progress_ms`` is negative or not a multiple of 20 ms.
            PlaybackQueueFull: ``max_queued`` replies already wait or play.
            PlaybackError: the call has ended.
        """
        if progress_ms < 0 or progress_ms % 20:
            raise ValueError(f"progress_ms must be a multiple of 20 ms, not {progress_ms}")
        if self._closed:
            raise PlaybackError("the call has ended; no more audio can be played")
        reply = Reply(next(self._ids), chunks, label, raw=True, progress_frames=progress_ms // 20)
        return self._enqueue(reply)

    def played_ms(self, reply: Reply) -> int:
        """How much of ``reply`` the caller has heard, ms from its start: the position of
        its last echoed progress mark plus the time since that echo, never past the next
        progress mark nor past the audio sent (before any echo: the time since its first
        frame, bounded the same way). All of it once its final mark was echoed."""
        sent_ms = reply.frames_sent * 20
        if reply.mark_echoed:
            return sent_ms
        if reply.first_audio_at is None:
            return 0
        since, base = (
            (reply.heard_at, reply.heard_ms)
            if reply.heard_at is not None
            else (reply.first_audio_at, 0)
        )
        elapsed_ms = int((self._clock() - since) * 1000)
        step_ms = reply.progress_frames * 20 if reply.progress_frames else elapsed_ms
        return max(0, min(base + elapsed_ms, base + step_ms, sent_ms))

    def _enqueue(self, reply: Reply) -> Reply:
        if self.pending >= self.max_queued:
            raise PlaybackQueueFull(
                f"{self.pending} replies are already queued (max_queued_replies = "
                f"{self.max_queued}); wait for one to finish or barge in"
            )
        self._queue.append(reply)
        self._wakeup.set()
        if self._active is not None and self._active.frames_sent:
            self._prefetch_next()
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="playback")
        return reply

    def take_queued(self) -> list[Reply]:
        """Remove and return, in order and unresolved, the replies that have sent no audio
        yet (the one starting, if it has sent nothing, and every queued one): the caller
        says them another way (the ``<Say>`` fallback) and resolves them."""
        taken: list[Reply] = []
        active = self._active
        if active is not None and active.frames_sent == 0 and not active.done():
            taken.append(active)
            if self._active_task is not None:
                self._active_task.cancel()
        taken.extend(self._queue)
        self._queue.clear()
        self._drop_prefetch()
        self._taken.update(reply.id for reply in taken)
        return taken

    def barge_in(self) -> bool:
        """Stop talking now: drop queued replies, cancel the playing one (closing its TTS
        stream), purge unsent frames, send ``clear``. Returns False (and sends nothing) when
        nothing was playing or queued."""
        if not self.speaking:
            return False
        for reply in self._queue:
            reply._resolve(ReplyStatus.CANCELLED)
        self._queue.clear()
        self._drop_prefetch()
        self._stash = None
        for reply in self._held.values():
            reply._resolve(ReplyStatus.CANCELLED)
        self._held.clear()
        self._gate.set()
        if self._active is not None:  # resolved now, so the app sees it at speech start
            self._active._resolve(ReplyStatus.CANCELLED)
        if self._active_task is not None:
            self._active_task.cancel()
        for message in self.channel.purge():
            if message.kind == "mark":
                self._finish_mark(message.tag, ReplyStatus.CANCELLED)
        for name in list(self._awaiting_mark):
            self._finish_mark(name, ReplyStatus.CANCELLED)
        self._progress.clear()  # marks Twilio echoes on ``clear`` were not played
        self.channel.send(OutboundMessage("clear", clear_message(self.stream_sid)), front=True)
        self._play_end = self._clock()
        return True

    def on_mark(self, name: str) -> bool:
        """Twilio echoed mark ``name``. Returns False for a mark this playback did not send
        (or already settled, e.g. echoed after a ``clear``)."""
        progress = self._progress.pop(name, None)
        if progress is not None:
            reply, ms = progress
            if ms > reply.heard_ms:
                reply.heard_ms, reply.heard_at = ms, self._clock()
            return True
        entry = self._awaiting_mark.get(name)
        if entry is None:
            return False
        entry[0].mark_echoed = True
        self._finish_mark(name, ReplyStatus.PLAYED)
        return True

    async def close(self) -> None:
        """End of call: every unfinished reply resolves CANCELLED; idempotent."""
        self._closed = True
        for reply in self._queue:
            reply._resolve(ReplyStatus.CANCELLED)
        self._queue.clear()
        self._stash = None
        for reply in self._held.values():
            reply._resolve(ReplyStatus.CANCELLED)
        self._held.clear()
        self._gate.set()
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None:
            await prefetch.cancel()
        await self._held_syntheses.close()
        for name in list(self._awaiting_mark):
            self._finish_mark(name, ReplyStatus.CANCELLED)
        self._progress.clear()
        active = self._active
        if self._worker is not None:
            self._worker.cancel()
        if self._active_task is not None:
            self._active_task.cancel()
        for task in (self._active_task, self._worker):
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        if active is not None and active.id not in self._taken:
            active._resolve(ReplyStatus.CANCELLED)

    # --- internals -------------------------------------------------------------------------

    def _prefetch_next(self) -> None:
        """Start synthesising the next queued reply when it is a whole text and nothing is
        being prefetched (called once the playing reply has sent audio, so the two
        syntheses never compete for its first audio)."""
        if self._prefetch is not None or not self._queue or self.provider is None:
            return
        nxt = self._queue[0]
        if not isinstance(nxt.source, str):
            return
        self._prefetch = self._synthesis(nxt, nxt.source)

    def _synthesis(self, key: object, text: str) -> Prefetch:
        """Start synthesising ``text`` into memory (``key``: the reply or text it is for),
        timing the TTS's first audio."""
        assert self.provider is not None
        provider = self.provider
        asked = self._clock()

        def first_audio(at: float) -> None:
            metrics.observe_tts_first_byte(provider, at - asked)

        return Prefetch(
            key,
            provider.synthesize(text, self.config),
            on_first_audio=first_audio,
            clock=self._clock,
            aclose=_aclose,
        )

    def _drop_prefetch(self) -> None:
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None:
            prefetch.abort()

    def _finish_mark(self, name: str, status: ReplyStatus) -> None:
        entry = self._awaiting_mark.pop(name, None)
        if entry is not None:
            entry[1].cancel()
            entry[0]._resolve(status)

    def _mark_timed_out(self, name: str) -> None:
        if name in self._awaiting_mark:
            log.info("stream %s: no echo for mark %s; counting it played", self.stream_sid, name)
            self._finish_mark(name, ReplyStatus.PLAYED)

    async def _run(self) -> None:
        while not self._closed:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            reply = self._queue.popleft()
            self._active = reply
            task = asyncio.get_running_loop().create_task(self._play(reply), name=reply.mark_name)
            self._active_task = task
            try:
                await asyncio.wait({task})
            finally:
                self._active = None
                self._active_task = None
            if reply.id in self._taken:
                continue
            if task.cancelled() or isinstance(task.exception(), _StreamClosed):
                reply._resolve(ReplyStatus.CANCELLED)
            elif (exc := task.exception()) is not None:
                log.warning("stream %s: reply %d failed: %s", self.stream_sid, reply.id, exc)
                if not reply.raw:
                    metrics.count_vendor_error(self.provider, "synthesis")
                reply._fail(exc)

    async def _play(self, reply: Reply) -> None:
        converter = None
        framer = Framer(FRAME_BYTES)
        asked: float | None = None  # when a text's synthesis was asked (TTS time to first audio)
        if isinstance(reply.source, bytes):
            stream: AsyncIterator[bytes] = _raw(reply.source)
        elif reply.raw:
            stream = aiter(reply.source)  # type: ignore[arg-type]
        else:
            assert self.provider is not None
            fmt = self.provider.output_format(self.config)
            converter = None if fmt == MULAW_8K else AudioConverter(fmt, MULAW_8K)
            prefetch = self._prefetch
            held = self._held_syntheses.take(reply.id)
            if held is not None:
                stream = held.stream()  # synthesised ahead; its first audio was timed
            elif prefetch is not None and prefetch.reply is reply:
                self._prefetch = None
                stream = prefetch.stream()  # its first audio was timed as it came
            elif isinstance(reply.source, str):
                asked = self._clock()
                stream = self.provider.synthesize(reply.source, self.config)
            else:
                stream = self.provider.synthesize_stream(reply.source, self.config)
        try:
            async for chunk in stream:
                ready = self._clock()
                if asked is not None and chunk:
                    metrics.observe_tts_first_byte(self.provider, ready - asked)
                    asked = None
                audio = converter.convert(chunk) if converter else chunk
                for frame in framer.push(audio):
                    await self._send_frame(reply, frame, ready)
            ready = self._clock()
            tail = converter.flush(discard_partial=True) if converter else b""
            for frame in framer.push(tail):
                await self._send_frame(reply, frame, ready)
            last = framer.flush(pad=True)
            if last:
                await self._send_frame(reply, last, ready)
        finally:
            await _aclose(stream)
        if reply.frames_sent == 0:
            reply._resolve(ReplyStatus.PLAYED)
            return
        await self._gate.wait()  # paused: the mark goes after the audio sent on resume
        if not self.channel.send(
            OutboundMessage("mark", mark_message(self.stream_sid, reply.mark_name), reply.mark_name)
        ):
            raise _StreamClosed
        self._await_mark(reply, reply.mark_name)

    def _await_mark(self, reply: Reply, name: str) -> None:
        """Wait for the echo of mark ``name``, at most ``mark_timeout_ms`` past the end of
        the audio sent so far."""
        delay = max(0.0, self._play_end - self._clock()) + self.mark_timeout_s
        handle = asyncio.get_running_loop().call_later(delay, self._mark_timed_out, name)
        self._awaiting_mark[name] = (reply, handle)

    async def _send_frame(self, reply: Reply, frame: bytes, ready: float) -> None:
        """Send ``frame`` on schedule; ``ready``: when its audio came from the TTS (s)."""
        if not self._gate.is_set():  # paused: wait for resume (or the barge-in's cancel)
            await self._gate.wait()
        now = self._clock()
        if self._play_end < now:  # Twilio's buffer ran dry (first frame, or a slow TTS)
            self._play_end = now
        due = self._play_end - self.lead_s
        if due > now:
            await self._sleep(due - now)
            now = self._clock()
        message = OutboundMessage("media", media_message(self.stream_sid, frame))
        if not self.channel.send(message):
            raise _StreamClosed
        self._recent.append(message)
        self._media.late(now - (due if due > ready else ready))
        if self.frame_times is not None:
            self.frame_times.append(self._clock())
        if reply.first_audio_at is None:
            reply.first_audio_at = now
            self._prefetch_next()  # after this reply's first audio: never delays it
        self._play_end += FRAME_S
        reply.frames_sent += 1
        every = reply.progress_frames
        if every and reply.frames_sent % every == 0:
            name = f"{reply.mark_name}@{reply.frames_sent * 20}"
            if self.channel.send(
                OutboundMessage("mark", mark_message(self.stream_sid, name), name)
            ):
                self._progress[name] = (reply, reply.frames_sent * 20)


_ACLOSE_TIMEOUT_S = 5.0


async def _raw(audio: bytes) -> AsyncIterator[bytes]:
    yield audio


async def _aclose(stream: AsyncIterator[bytes]) -> None:
    """Close a TTS stream (and so the vendor request), bounded: a vendor that hangs while
    closing must not hold up barge-in bookkeeping or the end of the call."""
    aclose = getattr(stream, "aclose", None)
    if aclose is None:
        return
    try:
        await asyncio.wait_for(aclose(), _ACLOSE_TIMEOUT_S)
    except (TimeoutError, Exception) as exc:  # must not mask the reply's real outcome
        log.debug("closing TTS stream: %r", exc)
