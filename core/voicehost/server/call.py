"""The per-call session: one Twilio call's stream, STT session, playback and app callbacks.

A :class:`Call` is made by the Media Streams handler when a ``start`` is accepted. It

* opens an STT session from the configured provider with its config blob (in the background:
  if it fails to connect the call stays up and playback still works, as in the seed);
* forwards each inbound 20 ms ``media`` frame: μ-law bytes pass through untouched when the
  provider's ``input_formats`` accept μ-law 8 kHz, otherwise they are converted to the
  provider's first input format by one stateful :class:`voicehost.audio.AudioConverter` (the
  resampler state spans frames);
* turns STT callbacks and ``dtmf`` into :class:`~voicehost.server.handler.CallHandler` calls
  (each in its own task, exceptions logged), doing barge-in first on speech start;
* acts on the call: :meth:`Call.say`, :meth:`Call.send_dtmf` (in-band ITU-T Q.23 tones,
  paced like speech), :meth:`Call.transfer` (``<Dial>`` through REST), :meth:`Call.hangup`;
* ends itself at ``max_call_duration_s`` (a goodbye, then end reason ``max-duration``);
* moves to the ``<Say>``/``<Gather>`` fallback (:class:`~voicehost.server.call_control.
  SayFallback`) when its TTS provider cannot start: the first reply fails before any audio
  was sent. Such a call (and one that never had a stream) lives on without a socket; its
  caller turns come from the voice webhook's ``<Gather>`` results;
* ends exactly once (:meth:`Call.end`): playback cancelled, STT closed, handler tasks
  cancelled, then ``on_call_end``.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any

from voicehost import metrics
from voicehost.config_model import ProviderConfig
from voicehost.contracts import (
    MULAW_8K,
    AudioFormat,
    TranscriptionProvider,
    TranscriptionSession,
)
from voicehost.dtmf import check_dtmf_digits, dtmf_ulaw
from voicehost.errors import VoicehostError
from voicehost.phone import is_call_target
from voicehost.server.back_channel import BackChannelGate
from voicehost.server.call_control import CallControl, CallControlError, HeardText, SayFallback
from voicehost.server.call_stt import CallTranscription, choose_input_format
from voicehost.server.events import BOT_HANGUP, ERROR, IDLE, MAX_DURATION, TRANSFERRED
from voicehost.server.handler import CallHandler
from voicehost.server.playback import Playback, PlaybackError, Reply, ReplyStatus
from voicehost.server.prefetch import Prefetch
from voicehost.server.twiml import dial_twiml, notify_twiml

log = logging.getLogger(__name__)

__all__ = ["Call", "choose_input_format"]  # choose_input_format is re-exported from call_stt

_HANDLER_END_TIMEOUT_S = 10.0
# How long the goodbye at max_call_duration_s and the line before a transfer may take, s.
_LAST_WORDS_TIMEOUT_S = 15.0


class Call:
    """One live call: a Media Streams socket after its ``start`` or, without a working
    stream, a call spoken to with ``<Say>`` and listened to with ``<Gather>``.

    Attributes:
        call_sid / stream_sid / account_sid: Twilio ids (``CA…`` / ``MZ…`` / ``AC…``;
            ``stream_sid`` is ``""`` without a stream).
        from_ / to / direction: from the voice webhook (empty when unknown).
        answered_by: Twilio's ``AnsweredBy`` (machine detection: ``human``,
            ``machine_end_beep`` …), ``""`` when not asked for.
        custom_parameters: ``start.customParameters`` minus the stream token.
        status: the last ``CallStatus`` Twilio reported (``in-progress`` once streaming).
        streaming: True while the call is carried by a Media Stream; False for the
            ``<Say>``/``<Gather>`` fallback.
        state: a free dict for the application.
        started_at: wall-clock start time (``time.time()``).
        stt: the STT session, or None when none is configured or it could not be made.
        stt_connected: True once the STT session connected.
        input_format: the format fed to the STT session.
        malformed: counts of malformed inbound messages by kind (json, base64, …).
        frames_in: inbound media frames received.
        end_reason: why it ended (see ``CallHandler.on_call_end``), None while live.
    """

    def __init__(
        self,
        *,
        call_sid: str,
        stream_sid: str,
        playback: Playback | SayFallback,
        handler: CallHandler,
        request_close: Callable[[int, str], None],
        account_sid: str = "",
        from_: str = "",
        to: str = "",
        direction: str = "",
        answered_by: str = "",
        custom_parameters: Mapping[str, str] | None = None,
        stt_provider: TranscriptionProvider | None = None,
        stt_config: ProviderConfig | None = None,
        barge_in: bool = True,
        barge_in_min_speech_ms: int = 0,
        stt_close_timeout_s: float = 5.0,
        control: CallControl | None = None,
        turn: Any = None,
        preemptive: bool = False,
    ) -> None:
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self.account_sid = account_sid
        self.from_ = from_
        self.to = to
        self.direction = direction
        self.answered_by = answered_by
        self.custom_parameters = dict(custom_parameters or {})
        self.status = "in-progress"
        self.state: dict[str, Any] = {}
        self.started_at = time.time()
        self.playback = playback
        self.control = control or CallControl()
        self.handler = handler
        self.barge_in_enabled = barge_in
        self.barge_in_min_speech_ms = barge_in_min_speech_ms
        #: judges caller speech over the bot (``barge_in_min_speech_ms``; a stream's calls)
        self.back_channels = (
            BackChannelGate(
                call_sid,
                playback,
                barge_in_min_speech_ms,
                lambda: self._dispatch("on_speech_start"),
            )
            if isinstance(playback, Playback)
            else None
        )
        self.malformed: collections.Counter[str] = collections.Counter()
        self.frames_in = 0
        self._media = metrics.media_tally()
        self.end_reason: str | None = None
        self._request_close = request_close
        self.transcription = (
            CallTranscription(
                call_sid,
                stream_sid,
                stt_provider,
                stt_config,
                on_partial=lambda text: self._dispatch("on_partial", text),
                on_transcript=self._transcript,
                on_speech_start=self._speech_started,
                close_timeout_s=stt_close_timeout_s,
                turn=turn,
                on_provisional=self._provisional if preemptive else None,
            )
            if stt_provider is not None
            else None
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._ended = asyncio.Event()
        self._ending = False
        self._audio_played = False
        self._timers: dict[str, asyncio.TimerHandle] = {}
        # While STT closes, the vendor may flush the caller's last words (Deepgram's
        # Finalize, OpenAI's commit); those finals still reach the handler.
        self._late_tasks: set[asyncio.Task[None]] = set()
        self._listener: Callable[[bytes], None] | None = None

    # --- what the application uses ---------------------------------------------------------

    def say(self, text: str | AsyncIterable[str]) -> Reply:
        """Queue a reply; ``await`` the returned :class:`Reply` to wait until it has played.

        On a streaming call whose TTS provider fails before sending any audio (the first
        reply of the call) and with REST configured, the call moves to the ``<Say>`` /
        ``<Gather>`` fallback and the reply's text is said there.

        Raises:
            PlaybackQueueFull: too many replies queued (``max_queued_replies``).
            PlaybackError: no TTS provider, or the call has ended.
        """
        if not self.streaming or self._audio_played or self.control.rest is None:
            return self.playback.say(text)
        heard = HeardText(text)
        reply = self.playback.say(heard if not isinstance(text, str) else text)

        def settled(outcome: asyncio.Future[ReplyStatus]) -> None:
            if not outcome.cancelled():
                outcome.exception()  # retrieved: the failure is handled below, not lost
            self._after_first_reply(reply, heard)

        reply.wait().add_done_callback(settled)
        return reply

    def synthesize_ahead(self, text: str) -> Prefetch | None:
        """Start synthesising ``text`` now and hold its audio: the next :meth:`say` of the
        same text plays it without waiting for the TTS (preemptive generation). Nothing is
        sent to the caller until then; ``abort()`` the returned handle to drop it. None when
        the call cannot hold audio (no stream, no TTS provider, the call has ended)."""
        if not isinstance(self.playback, Playback):
            return None
        return self.playback.synthesize_ahead(text)

    def send_dtmf(self, digits: str, *, tone_ms: int = 100, gap_ms: int = 60) -> Reply:
        """Press keys on the call: in-band DTMF tones (ITU-T Q.23; ``w`` is a 500 ms pause)
        queued and paced like speech; ``<Play digits>`` without a stream. ``await`` the
        :class:`Reply` to wait until they were sent.

        Raises:
            ValueError: ``digits`` has anything but ``0-9 * # A-D w W`` (1 to 64 of them).
            PlaybackQueueFull / PlaybackError: as :meth:`say`.
        """
        digits = check_dtmf_digits(digits)
        if isinstance(self.playback, SayFallback):
            return self.playback.play_digits(digits)
        self._audio_played = True
        return self.playback.play_audio(
            dtmf_ulaw(digits, tone_ms=tone_ms, gap_ms=gap_ms), label="dtmf"
        )

    def clear(self) -> bool:
        """Barge in by hand: stop and drop all playback, send ``clear``."""
        return self.playback.barge_in()

    def listen(self, sink: Callable[[bytes], None] | None) -> None:
        """Hand every inbound 20 ms μ-law frame (160 bytes, as Twilio sent it) to ``sink``
        too, on the event loop, as it arrives (None: stop). A speech-to-speech model hears
        the caller this way. ``sink`` must not block; an exception it raises is logged and
        the frame is dropped."""
        self._listener = sink

    def play_stream(self, ulaw_chunks: AsyncIterable[bytes], *, progress_ms: int = 100) -> Reply:
        """Play μ-law 8 kHz arriving in chunks (a speech-to-speech model's audio), framed and
        paced like speech, with a progress mark every ``progress_ms`` of audio
        (:meth:`played_ms`). ``await`` the :class:`Reply` to wait until its final mark was
        echoed (it has played).

        Raises:
            ValueError: ``progress_ms`` not a multiple of 20.
            PlaybackQueueFull / PlaybackError: as :meth:`say`; PlaybackError also without a
                stream (the ``<Say>`` fallback has no audio path).
        """
        if not isinstance(self.playback, Playback):
            raise PlaybackError("the call has no media stream to play audio on")
        self._audio_played = True
        return self.playback.play_stream(ulaw_chunks, label="stream", progress_ms=progress_ms)

    def played_ms(self, reply: Reply) -> int:
        """How much of ``reply`` the caller has heard, ms (see
        :meth:`~voicehost.server.playback.Playback.played_ms`); 0 without a stream."""
        return self.playback.played_ms(reply) if isinstance(self.playback, Playback) else 0

    async def end_with_message(self, text: str, reason: str) -> None:
        """End the call after Twilio says ``text`` with ``<Say>`` (a REST update to
        ``<Say>text</Say><Hangup/>``, which also closes the stream); without REST, or when
        Twilio refuses it, the call is just hung up. ``on_call_end`` gets ``reason``."""
        if self.end_reason is None and not self._ending:
            self.end_reason = reason
        rest = self.control.rest
        if rest is not None and text and not self._ending:
            try:
                await rest.update_call(
                    self.call_sid, twiml=notify_twiml(text, voice=self.control.say_voice)
                )
            except VoicehostError as exc:
                log.warning("call %s: <Say> of the last words refused: %s", self, exc)
            else:
                await self.hangup(reason, rest_hangup=False)
                return
        await self.hangup(reason)

    async def transfer(self, to: str, *, message: str | None = None) -> None:
        """Hand the call to a person: say ``message`` (default ``[server] transfer_message``)
        and wait until it has played (at most 15 s), then update the call over REST to
        ``<Dial>`` ``to``. The call then ends here with reason ``transferred``.

        Args:
            to: an E.164 number, a ``sip:`` URI or a ``client:`` identity.

        Raises:
            CallControlError: ``to`` is not such a target, REST is not configured, or Twilio
                refused the update (the call then goes on).
        """
        if not is_call_target(to):
            raise CallControlError(
                f"cannot transfer to {to!r}: give an E.164 number, a sip: URI or a client: id"
            )
        rest = self.control.require_rest("transfer")
        line = self.control.transfer_message if message is None else message
        if line and not self._ending:
            await self._say_last_words(line)
        try:
            await rest.update_call(self.call_sid, twiml=dial_twiml(to))
        except VoicehostError as exc:
            raise CallControlError(f"transfer to {to} refused: {exc}") from exc
        log.info("call %s: transferred to %s", self, to)
        await self.hangup(TRANSFERRED, rest_hangup=False)

    async def hangup(self, reason: str = BOT_HANGUP, *, rest_hangup: bool = True) -> None:
        """End the call from our side. Streaming: the stream socket is closed (Twilio then
        runs the TwiML after ``<Connect>``, which voicehost answers with ``<Hangup/>``).
        Without a stream: a REST update ``Status=completed``. Returns at once; ``on_call_end``
        follows with ``reason`` (the first reason given wins)."""
        if self.end_reason is None and not self._ending:
            self.end_reason = reason
        if not self.streaming and rest_hangup and self.control.rest is not None:
            try:
                await self.control.rest.hangup(self.call_sid)
            except VoicehostError as exc:
                log.warning("call %s: REST hang-up failed: %s", self, exc)
        self._request_close(1000, "hangup")

    @property
    def streaming(self) -> bool:
        """True while a Media Stream carries the call's audio; False once it speaks with
        ``<Say>``/``<Gather>`` (its output is then a :class:`SayFallback`)."""
        return isinstance(self.playback, Playback)

    @property
    def stt(self) -> TranscriptionSession | None:
        """The STT session, or None when none is configured or it could not be made."""
        return self.transcription.session if self.transcription is not None else None

    @property
    def stt_connected(self) -> bool:
        """True once the STT session connected."""
        return self.transcription is not None and self.transcription.connected

    @property
    def input_format(self) -> AudioFormat:
        """The format fed to the STT session (μ-law 8 kHz without one)."""
        return self.transcription.input_format if self.transcription is not None else MULAW_8K

    @property
    def ended(self) -> bool:
        """True once :meth:`end` has finished."""
        return self._ended.is_set()

    async def wait_ended(self) -> str:
        """Wait until the call has ended; returns the reason."""
        await self._ended.wait()
        return self.end_reason or "error"

    # --- driven by the stream handler ------------------------------------------------------

    def start(self) -> None:
        """Open the STT session in the background (streaming calls), start the call-length
        limit and tell the app the call started."""
        loop = asyncio.get_running_loop()
        limit_s = self.control.max_duration_s
        self._timers["max-duration"] = loop.call_later(limit_s, self._max_duration_reached)
        if not self.streaming:
            self.touch()
        if self.transcription is not None and self.streaming:
            self.transcription.open()
        self._dispatch("on_call_start")

    def feed_audio(self, ulaw: bytes) -> None:
        """One inbound μ-law frame from Twilio → the STT session (converted if needed)."""
        self.frames_in += 1
        self._media.frames_in += 1
        if self.back_channels is not None:
            self.back_channels.feed(ulaw)
        if self.transcription is not None:
            self.transcription.feed(ulaw)
        if self._listener is not None:
            try:
                self._listener(ulaw)
            except Exception:
                log.exception("call %s: audio listener failed; frame dropped", self)

    def dtmf(self, digit: str) -> None:
        """A key press from the caller (one key from the stream; every key pressed before
        ``<Gather>`` finished in the fallback)."""
        self._dispatch("on_dtmf", digit)

    def gathered(self, speech: str, digits: str) -> None:
        """A ``<Gather>`` result of the fallback: ``SpeechResult`` is a final transcript,
        ``Digits`` key presses (either may be empty)."""
        self.touch()
        if speech.strip():
            self._dispatch("on_transcript", speech)
        if digits:
            self._dispatch("on_dtmf", digits)

    def touch(self) -> None:
        """Twilio asked about this stream-less call: restart its idle timer
        (``stream_idle_timeout_s``; ``<Gather>`` posts at least every few seconds)."""
        old = self._timers.pop("idle", None)
        if old is not None:
            old.cancel()
        if self._ending:
            return
        self._timers["idle"] = asyncio.get_running_loop().call_later(
            self.control.idle_timeout_s, self._idle_reached
        )

    def detach_stream(self, request_close: Callable[[int, str], None]) -> None:
        """The call left its Media Stream for the ``<Say>``/``<Gather>`` fallback:
        ``request_close`` now ends the call without a socket."""
        self._request_close = request_close
        self.stream_sid = ""
        self.touch()

    def mark(self, name: str) -> None:
        """Twilio echoed a mark."""
        if not self.playback.on_mark(name):
            log.debug("call %s: mark %r not ours or already settled", self, name)

    async def end(self, reason: str) -> None:
        """End the call exactly once; later calls wait for the first to finish."""
        if self._ending:
            await self._ended.wait()
            return
        self._ending = True
        if self.end_reason is None:
            self.end_reason = reason
        for timer in self._timers.values():
            timer.cancel()
        if self.back_channels is not None:
            self.back_channels.cancel()
        try:
            await self.playback.close()
            if self.transcription is not None:
                await self.transcription.close()
            if self._late_tasks:  # let the flushed finals be handled (recorded), bounded
                await asyncio.wait(self._late_tasks, timeout=_HANDLER_END_TIMEOUT_S)
            tasks = [t for t in self._tasks if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
            if self.malformed:
                log.warning("call %s: malformed messages: %s", self, dict(self.malformed))
            await self._call_handler(
                "on_call_end", self.end_reason or reason, limit_s=_HANDLER_END_TIMEOUT_S
            )
        finally:
            self._ended.set()

    # --- internals -------------------------------------------------------------------------

    async def _say_last_words(self, text: str) -> None:
        """Say ``text`` and wait until it played, failed or ``_LAST_WORDS_TIMEOUT_S`` passed."""
        try:
            reply = self.say(text)
            await asyncio.wait_for(reply.wait(), _LAST_WORDS_TIMEOUT_S)
        except (TimeoutError, VoicehostError) as exc:
            log.info("call %s: last words not played (%r)", self, exc)

    def _max_duration_reached(self) -> None:
        log.info("call %s: max_call_duration_s reached; ending it", self)
        self._spawn(self._end_with_goodbye())

    async def _end_with_goodbye(self) -> None:
        if self.end_reason is None:
            self.end_reason = MAX_DURATION
        if self.control.max_duration_message:
            self.playback.barge_in()
            await self._say_last_words(self.control.max_duration_message)
        await self.hangup(MAX_DURATION)

    def _idle_reached(self) -> None:
        log.info(
            "call %s: no word from Twilio for %.0f s; ending it", self, self.control.idle_timeout_s
        )
        self._spawn(self.hangup(IDLE, rest_hangup=True))

    def _after_first_reply(self, reply: Reply, heard: HeardText) -> None:
        """A reply of a call that has not played audio yet settled. When it failed before
        any audio (the TTS cannot start), the call moves to the ``<Say>``/``<Gather>``
        fallback once; this reply's text, the replies still queued behind it and any later
        reply that fails the same way are said there, in order."""
        if reply.frames_sent or reply.status is not ReplyStatus.FAILED:
            self._audio_played = self._audio_played or reply.frames_sent > 0
            return
        if self._ending or self.control.rest is None:
            return
        if isinstance(self.playback, SayFallback):  # switched already: say this one there
            self.playback.say(_rest_of(heard))
            return
        log.warning("call %s: TTS cannot start (%s); using <Say>/<Gather>", self, reply.error)
        old = self.playback
        fallback = SayFallback(self.call_sid, self.control)
        self.playback = fallback  # not streaming now: the stream's end must not end the call
        first = fallback.say(_rest_of(heard))  # the REST update that replaces the stream
        for queued in old.take_queued():
            _settle_with(queued, fallback.say(queued.source))  # type: ignore[arg-type]
        self._spawn(self._finish_fall_back(old, first))

    async def _finish_fall_back(self, old: Playback | SayFallback, first: Reply) -> None:
        """Close the stream's playback; hang up when Twilio refused the first ``<Say>``."""
        await old.close()
        try:
            await first.wait()
        except Exception as exc:  # the fallback's CallControlError: Twilio refused it
            log.warning("call %s: <Say> fallback refused (%s); hanging up", self, exc)
            await self.hangup(ERROR)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _speech_started(self) -> None:
        """The caller started speaking. Over the bot, with ``barge_in_min_speech_ms``, the
        bot is paused and the speech judged (:mod:`voicehost.server.back_channel`): the app
        hears of the speech start only once it is a real interruption."""
        if not self.barge_in_enabled or self._ending:
            self._dispatch("on_speech_start")
            return
        gate = self.back_channels
        if gate is not None and isinstance(self.playback, Playback):
            if gate.speech_started():
                self._dispatch("on_speech_start")
            return
        if self.playback.barge_in():
            metrics.count_barge_in()
        self._dispatch("on_speech_start")

    def _transcript(self, text: str) -> None:
        """A final from the STT session. The transcript of a back-channel ("mm-hm", "okay",
        "yeah, sure": :meth:`BackChannelGate.is_back_channel`) is not a turn: it is dropped,
        so the bot does not answer it. (A cough has no transcript; a longer final after it
        is the caller's next words.)"""
        if self.back_channels is not None and self.back_channels.is_back_channel(text):
            log.info("call %s: the back-channel's transcript %r is not answered", self, text)
            return
        self._dispatch("on_transcript", text)

    def _provisional(self, text: str | None) -> None:
        """The caller's turn before it is confirmed (None: withdrawn), for preemptive
        generation; a back-channel's transcript is not announced (it will not be a turn)."""
        gate = self.back_channels
        if text is not None and gate is not None and gate.is_back_channel(text, consume=False):
            return
        self._dispatch("on_provisional_transcript", text)

    def _dispatch(self, name: str, *args: Any) -> None:
        draining = self.transcription is not None and self.transcription.draining
        late = self._ending and draining and name == "on_transcript"
        if self._ending and not late:
            return
        task = asyncio.get_running_loop().create_task(self._call_handler(name, *args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if late:
            self._late_tasks.add(task)
            task.add_done_callback(self._late_tasks.discard)

    async def _call_handler(self, name: str, *args: Any, limit_s: float | None = None) -> None:
        method = getattr(self.handler, name, None)
        if method is None:
            return
        try:
            result = method(self, *args)
            if inspect.isawaitable(result):
                await asyncio.wait_for(result, limit_s) if limit_s else await result
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call %s: handler %s failed; the call goes on", self, name)

    def __str__(self) -> str:
        return self.call_sid

    def __repr__(self) -> str:
        return f"<Call {self.call_sid} stream={self.stream_sid} ended={self.ended}>"


async def _rest_of(heard: HeardText) -> AsyncIterator[str]:
    """The whole text of a reply whose TTS failed, as a one-piece stream."""
    yield await heard.rest_of_text()


def _settle_with(old: Reply, new: Reply) -> None:
    """Resolve ``old`` as ``new`` resolves (a queued reply said by the fallback instead)."""

    def done(outcome: asyncio.Future[ReplyStatus]) -> None:
        if outcome.cancelled():
            old._resolve(ReplyStatus.CANCELLED)
        elif (exc := outcome.exception()) is not None:
            old._fail(exc)
        else:
            old._resolve(outcome.result())

    new.wait().add_done_callback(done)  # type: ignore[attr-defined]
