"""Acting on a call through Twilio's REST API: what a call needs for ``hangup`` without a
stream, ``transfer`` and the ``<Say>``/``<Gather>`` fallback (wire-protocols.md §1.7).

:class:`CallRest` is the small part of :class:`voicehost.server.rest.TwilioRest` a call uses,
so tests and other transports can give their own. :class:`SayFallback` speaks a call's
replies when it has no working Media Stream (the stream never connected, or the TTS provider
could not start): each reply is a REST update of the call's TwiML to ``<Say>`` followed by
``<Gather input="speech dtmf">``, whose ``SpeechResult`` / ``Digits`` come back to the voice
webhook (``step=gather``) as caller turns, as the seed's ``playTts`` / ``startListening`` do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Protocol

import attrs

from voicehost.errors import VoicehostError
from voicehost.server.playback import PlaybackError, Reply, ReplyStatus
from voicehost.server.twiml import play_digits_twiml, say_gather_twiml

log = logging.getLogger(__name__)

__all__ = ["CallControl", "CallControlError", "CallRest", "HeardText", "SayFallback"]

#: How fast ``<Say>`` is assumed to speak when a fallback reply is awaited (Twilio does not
#: tell when it finished): about 150 words a minute.
WORDS_PER_SECOND = 2.5


class CallControlError(VoicehostError):
    """A call action cannot be done: no REST credentials (``[twilio] account_sid`` /
    ``auth_token``), an invalid target or digits, or Twilio refused the update."""


class CallRest(Protocol):
    """The REST calls a live call makes (``voicehost.server.rest.TwilioRest`` fits)."""

    async def update_call(
        self,
        call_sid: str,
        *,
        status: str | None = None,
        twiml: str | None = None,
        url: str | None = None,
    ) -> Any:
        """``POST /Calls/{call_sid}.json`` with ``Status`` / ``Twiml`` / ``Url``."""
        ...

    async def hangup(self, call_sid: str) -> None:
        """End the call (``Status=completed``); a call already over is not an error."""
        ...


@attrs.frozen
class CallControl:
    """What a call needs to act through Twilio.

    Attributes:
        rest: the REST client, or None when no credentials are configured.
        webhook_url: the public voice webhook URL (``<Gather action>`` and redirects).
        say_voice: ``<Say voice>`` (``""``: Twilio's default).
        transfer_message: said before a transfer (``""``: none).
        max_duration_s / max_duration_message: the call-length limit (s) and its goodbye.
        idle_timeout_s: a call without a stream that Twilio has not asked about for this
            long is over (its caller hung up unseen), s.
    """

    rest: CallRest | None = None
    webhook_url: str = ""
    say_voice: str = ""
    transfer_message: str = ""
    max_duration_s: float = 3600.0
    max_duration_message: str = ""
    idle_timeout_s: float = 30.0

    def require_rest(self, action: str) -> CallRest:
        """The REST client.

        Raises:
            CallControlError: none is configured.
        """
        if self.rest is None:
            raise CallControlError(
                f"cannot {action}: Twilio's REST API is not configured "
                "(set [twilio] account_sid and auth_token)"
            )
        return self.rest


class SayFallback:
    """Replies of one call spoken with ``<Say>`` + ``<Gather>`` through REST updates.

    It offers the part of :class:`~voicehost.server.playback.Playback` a call uses: ``say``
    returns a :class:`Reply` that resolves ``PLAYED`` once Twilio took the update and the
    text's estimated speaking time (:data:`WORDS_PER_SECOND`) has passed, ``FAILED`` with a
    :class:`CallControlError` when Twilio refused it. Replies are sent one at a time, in
    order (each update replaces the call's TwiML, so a later one would cut an earlier one).
    """

    def __init__(self, call_sid: str, control: CallControl) -> None:
        self.call_sid = call_sid
        self.control = control
        self.words_per_second = WORDS_PER_SECOND
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = 0
        self._closed = False

    @property
    def speaking(self) -> bool:
        """True while a reply is being sent or spoken."""
        return bool(self._tasks)

    @property
    def pending(self) -> int:
        """Replies not yet finished."""
        return len(self._tasks)

    def say(self, text: str | AsyncIterable[str]) -> Reply:
        """Speak ``text`` (whole, or pieces joined) with ``<Say>``, then listen.

        Raises:
            PlaybackError: the call has ended.
        """
        return self._queue(text, None)

    def play_digits(self, digits: str) -> Reply:
        """Press ``digits`` on the call with ``<Play digits>`` (checked by the caller)."""
        return self._queue(None, digits)

    def barge_in(self) -> bool:
        """Nothing to clear: Twilio plays ``<Say>`` itself."""
        return False

    def on_mark(self, name: str) -> bool:
        """There are no marks without a stream."""
        return False

    async def close(self) -> None:
        """End of call: unfinished replies resolve CANCELLED."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def _queue(self, text: str | AsyncIterable[str] | None, digits: str | None) -> Reply:
        if self._closed:
            raise PlaybackError("the call has ended; nothing more can be said")
        self._ids += 1
        reply = Reply(self._ids, text if text is not None else (digits or ""))
        task = asyncio.get_running_loop().create_task(self._send(reply, text, digits))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return reply

    async def _send(
        self, reply: Reply, text: str | AsyncIterable[str] | None, digits: str | None
    ) -> None:
        try:
            async with self._lock:  # taken first: replies go out in the order they were queued
                if text is not None:
                    spoken = text if isinstance(text, str) else "".join([p async for p in text])
                    twiml = say_gather_twiml(
                        spoken, self.control.webhook_url, voice=self.control.say_voice
                    )
                    seconds = len(spoken.split()) / self.words_per_second
                else:
                    spoken = ""
                    twiml = play_digits_twiml(digits or "", self.control.webhook_url)
                    seconds = 0.2 * len(digits or "")
                if spoken.strip() or digits:
                    rest = self.control.require_rest("speak without a stream")
                    try:
                        await rest.update_call(self.call_sid, twiml=twiml)
                    except VoicehostError as exc:
                        raise CallControlError(f"<Say> update refused: {exc}") from exc
                    await asyncio.sleep(seconds)
            reply._resolve(ReplyStatus.PLAYED)
        except asyncio.CancelledError:
            reply._resolve(ReplyStatus.CANCELLED)
            raise
        except Exception as exc:
            log.warning("call %s: fallback reply failed: %s", self.call_sid, exc)
            reply._fail(exc)


class HeardText:
    """An async iterator over a streamed reply that keeps every piece taken from it, so
    the reply's text can still be said another way when the TTS fails."""

    def __init__(self, source: str | AsyncIterable[str]) -> None:
        self._source = source
        self._iterator: AsyncIterator[str] | None = (
            None if isinstance(source, str) else aiter(source)
        )
        self.pieces: list[str] = []

    def __aiter__(self) -> HeardText:
        return self

    async def __anext__(self) -> str:
        if self._iterator is None:
            raise StopAsyncIteration
        piece = await anext(self._iterator)
        self.pieces.append(piece)
        return piece

    async def rest_of_text(self) -> str:
        """The whole text: what was taken so far and the rest of the source."""
        if isinstance(self._source, str):
            return self._source
        try:
            async for _ in self:
                pass
        except Exception as exc:  # a source closed by the failed TTS: say what we have
            log.debug("reading the rest of a reply: %r", exc)
        return "".join(self.pieces)
