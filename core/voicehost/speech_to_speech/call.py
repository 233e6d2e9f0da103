"""One call's speech-to-speech conversation: the caller's audio to the model, the model's
audio to the call, with barge-in, tools, records and reconnection.

Data flow (OpenAI's phone guidance, wire-protocols.md §3.2):

* **caller audio**: every inbound 20 ms μ-law frame (``call.listen``) goes to the session
  untouched. The frames since the vendor last committed a caller turn (its speech stop),
  at most :data:`BUFFER_S`, are also kept: after a reconnection they are replayed, so the
  caller's words during the outage reach the new session.
* **bot audio**: each spoken item's :class:`~voicehost.AudioOut` chunks become one
  ``call.play_stream`` reply, framed, paced (bounded lead) and followed by a progress mark
  every :data:`PROGRESS_MS`; the item ends at the next item or :class:`~voicehost.ResponseDone`.
* **barge-in**: on :class:`~voicehost.CallerSpeechStarted`, while an item is playing, the host
  notes how much of it the caller heard (``call.played_ms``, from the echoed marks), sends
  Twilio ``clear`` and calls ``session.truncate(item, audio_end_ms)``; the rest of that item's
  audio is dropped. A ``barge_in`` event is recorded.
* **tools**: ``hangup`` is acknowledged (``respond=False``) and the call ends once the
  goodbye's marks are echoed; ``send_dtmf`` is acknowledged and its digits are played in-band
  after the audio before it; ``transfer`` is acknowledged and the call is handed on after the
  audio before it; a registered tool runs (:class:`~voicehost.speech_to_speech.tools.CallTools`)
  and its result goes back with ``respond=True``. Each is recorded as ``tool_call`` /
  ``tool_result`` events (and ``send_dtmf`` / ``transfer`` events), as in a cascaded call.
* **records**: a caller turn takes its place when the caller stops speaking and gets its
  transcript when it arrives; a bot turn takes its place at its first audio and gets its
  transcript (kind ``greeting`` for the first item of a greeting, else ``reply``).
* **resilience**: when the session drops it is replaced (backoff 0.25, 0.5, 1, 2 s …, at
  most ``reconnect_attempts`` tries) by one whose context holds the conversation so far
  (``greet=False``); when that fails, or the vendor refuses the key, Twilio says
  ``apology`` with ``<Say>`` and the call ends with reason ``error``.
* **session limit**: ``max_session_s`` minus 30 s into the call the model is asked to say
  goodbye; after it (or at :class:`~voicehost.SessionExpiring`) the call ends with reason
  ``max-duration`` once what is playing has played.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import AsyncIterator

import attrs

from voicehost import metrics
from voicehost.audio import AudioConverter
from voicehost.contracts import (
    MULAW_8K,
    AudioOut,
    BotTranscript,
    CallContext,
    CallerSpeechStarted,
    CallerSpeechStopped,
    CallerTranscript,
    ConversationConfig,
    ConversationError,
    ConversationEvent,
    ConversationProvider,
    ConversationRequest,
    ConversationSession,
    ConversationTurn,
    ResponseDone,
    SessionExpiring,
    ToolCall,
    ToolUse,
)
from voicehost.conversation_log import CallLog, LogEntry
from voicehost.errors import ProviderAuthError, ProviderError, VoicehostError
from voicehost.server import Call
from voicehost.server.events import BOT_HANGUP, ERROR, MAX_DURATION
from voicehost.server.playback import Reply
from voicehost.speech_to_speech.tools import CallTools, ToolResult, parse_arguments

log = logging.getLogger(__name__)

__all__ = ["BUFFER_S", "PROGRESS_MS", "SpeechToSpeechCall"]

#: Caller audio kept for replay after a reconnection, s.
BUFFER_S = 2.0
#: A progress mark every this much bot audio, ms (the precision of ``audio_end_ms``).
PROGRESS_MS = 100
#: How long before ``max_session_s`` the model is asked to say goodbye, s.
GOODBYE_AHEAD_S = 30.0
_BACKOFF_S = (0.25, 0.5, 1.0, 2.0)
_CONNECT_TIMEOUT_S = 15.0
_PLAYED_TIMEOUT_S = 30.0  # the longest wait for audio to play before a hang-up or transfer
_YIELDS_TO_FIRST_FRAME = 3
_GOODBYE = "The call must end now: say a short, polite goodbye to the caller."


@attrs.define(eq=False)
class _Output:
    """The bot item being played: its chunk queue feeds one ``play_stream`` reply."""

    item_id: str
    queue: asyncio.Queue[bytes | None]
    reply: Reply
    first_delta_at: float


async def _chunks(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while (chunk := await queue.get()) is not None:
        yield chunk


class SpeechToSpeechCall:
    """Runs one call's conversation with a speech-to-speech provider.

    Args:
        call: the live call.
        provider / config: the chosen conversation provider and its parsed config.
        tools: the offered tools.
        call_log: the call's history and records.
        context: the call's context (``context.history`` is ``call_log``'s history).

    Attributes:
        first_audio: ``(first delta received, its reply)`` per bot item, for benchmarks
            (``reply.first_audio_at`` is when its first frame went out; monotonic s).
        reconnects: sessions opened after a drop.
    """

    def __init__(
        self,
        call: Call,
        provider: ConversationProvider,
        config: ConversationConfig,
        tools: CallTools,
        call_log: CallLog,
        context: CallContext,
    ) -> None:
        self.call = call
        self.provider = provider
        self.config = config
        self.tools = tools
        self.log = call_log
        self.context = context
        self.session: ConversationSession | None = None
        self.first_audio: list[tuple[float, Reply]] = []
        self.reconnects = 0
        fmt = provider.output_format(config)
        self._converter = None if fmt == MULAW_8K else AudioConverter(fmt, MULAW_8K)
        self._uncommitted: collections.deque[bytes] = collections.deque(maxlen=int(BUFFER_S / 0.02))
        self._out: _Output | None = None
        self._playing: _Output | None = None  # the last item handed to playback
        self._cut: set[str] = set()
        self._caller_entries: collections.deque[LogEntry] = collections.deque()
        self._bot_entries: dict[str, LogEntry] = {}
        self._greeting = bool(config.greeting)
        self._ending: str | None = None  # the reason of a hang-up under way: no reconnect
        self._tasks: set[asyncio.Task[None]] = set()
        self._no_item = asyncio.Event()  # set while no item is sending audio
        self._no_item.set()

    @property
    def speaking(self) -> bool:
        """True while bot audio is being sent or may still be playing (its mark not back)."""
        return self._out is not None or (
            self._playing is not None and not self._playing.reply.done()
        )

    # --- the call's life ---------------------------------------------------------------

    async def run(self) -> None:
        """Connect, converse, reconnect after drops; returns when the call ends or cannot
        go on (then it has been ended)."""
        self.call.listen(self._caller_audio)
        goodbye_at = self.config.max_session_s - GOODBYE_AHEAD_S
        timer = asyncio.get_running_loop().call_later(goodbye_at, self._session_limit)
        greet, failures = True, 0
        try:
            while self._ending is None and not self.call.ended:
                session = self.provider.create_session(self._request(greet))
                try:
                    await asyncio.wait_for(session.connect(), _CONNECT_TIMEOUT_S)
                except ProviderAuthError as exc:
                    await session.close()
                    metrics.count_vendor_error(self.provider, "auth")
                    log.error("call %s: %s refused the key: %s", self.call, self.provider.id, exc)
                    return await self._give_up()
                except (ProviderError, TimeoutError, OSError) as exc:
                    await session.close()
                    failures += 1
                    metrics.count_vendor_error(self.provider, "connect")
                    log.warning("call %s: conversation connect failed: %s", self.call, exc)
                    if failures > self.config.reconnect_attempts:
                        return await self._give_up()
                    await asyncio.sleep(_BACKOFF_S[min(failures, len(_BACKOFF_S)) - 1])
                    continue
                if not greet:
                    self.reconnects += 1
                greet, failures = False, 0
                await self._converse(session)
        finally:
            timer.cancel()
            self.call.listen(None)

    async def _converse(self, session: ConversationSession) -> None:
        """Pump one connected session's events until it ends or drops."""
        self.session = session
        for frame in list(self._uncommitted):  # what the last session may not have committed
            session.send_audio(frame)
        try:
            async for event in session.events():
                await self._on_event(event)
        except ProviderError as exc:
            metrics.count_vendor_error(self.provider, "session")
            log.warning("call %s: conversation dropped (%s); reconnecting", self.call, exc)
        finally:
            self.session = None
            self._end_item()
            await session.close()

    async def close(self) -> None:
        """The call ended: stop the tool tasks and close the session."""
        self._ending = self._ending or "ended"
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        if self.session is not None:
            await self.session.close()

    def _request(self, greet: bool) -> ConversationRequest:
        context = attrs.evolve(self.context, history=list(self.context.history))
        return ConversationRequest(
            config=self.config,
            context=context,
            instructions=self.tools.instructions(),
            tools=self.tools.specs(),
            greet=greet,
            input_format=MULAW_8K,
        )

    async def _give_up(self) -> None:
        self._ending = ERROR
        await self.call.end_with_message(self.config.apology, ERROR)

    # --- caller audio ------------------------------------------------------------------

    def _caller_audio(self, frame: bytes) -> None:
        self._uncommitted.append(frame)
        session = self.session
        if session is not None:
            session.send_audio(frame)

    # --- events ------------------------------------------------------------------------

    async def _on_event(self, event: ConversationEvent) -> None:
        if isinstance(event, AudioOut):
            if self._audio(event):
                # A new item: let the playback send its first frame before the rest of a
                # burst of events is read (its worker, then its reply task, must run).
                for _ in range(_YIELDS_TO_FIRST_FRAME):
                    await asyncio.sleep(0)
        elif isinstance(event, CallerSpeechStarted):
            await self._barge_in()
        elif isinstance(event, CallerSpeechStopped):
            self._uncommitted.clear()
            self._caller_entries.append(self.log.reserve("final", "", self.log.ms(), "caller"))
        elif isinstance(event, CallerTranscript):
            self._caller_said(event.text.strip())
        elif isinstance(event, BotTranscript):
            entry = self._bot_entries.pop(event.item_id, None)
            if entry is not None:
                self.log.settle(entry, event.text.strip())
            elif event.text.strip():
                turn = ConversationTurn("bot", event.text.strip())
                self.log.add("bot", "reply", event.text.strip(), turn=turn)
        elif isinstance(event, ResponseDone):
            self._end_item()
            if self._ending == MAX_DURATION:
                self._spawn(self._hang_up_after_audio(MAX_DURATION))
        elif isinstance(event, ToolCall):
            self._spawn(self._tool(event))
        elif isinstance(event, SessionExpiring):
            log.info("call %s: the conversation session reached its limit", self.call)
            self._ending = MAX_DURATION
            self._spawn(self._hang_up_after_audio(MAX_DURATION))
        elif isinstance(event, ConversationError):
            log.warning("call %s: conversation error: %s", self.call, event.error)

    def _caller_said(self, text: str) -> None:
        if self._caller_entries:
            self.log.settle(self._caller_entries.popleft(), text)
        elif text:
            self.log.add("caller", "final", text, turn=ConversationTurn("caller", text))

    def _audio(self, event: AudioOut) -> bool:
        """Play ``event``'s audio; True when it began a new item."""
        if event.item_id in self._cut or self.call.ended:
            return False
        started = False
        audio = self._converter.convert(event.audio) if self._converter else event.audio
        out = self._out
        if out is None or out.item_id != event.item_id:
            self._end_item()
            queue: asyncio.Queue[bytes | None] = asyncio.Queue()
            try:
                reply = self.call.play_stream(_chunks(queue), progress_ms=PROGRESS_MS)
            except VoicehostError as exc:  # the call is ending
                log.debug("call %s: bot audio not played: %s", self.call, exc)
                return False
            started = True
            out = self._out = self._playing = _Output(event.item_id, queue, reply, time.monotonic())
            self._no_item.clear()
            self.first_audio.append((out.first_delta_at, reply))
            kind = "greeting" if self._greeting else "reply"
            self._greeting = False
            self._bot_entries[event.item_id] = self.log.reserve(kind, "", self.log.ms())
        if audio:
            out.queue.put_nowait(audio)
        return started

    def _end_item(self) -> None:
        """The item being played has all its audio: its reply ends when that has played."""
        out, self._out = self._out, None
        self._no_item.set()
        if out is not None:
            out.queue.put_nowait(None)

    async def _barge_in(self) -> None:
        playing = self._playing
        if playing is None or playing.reply.done() or not self.call.barge_in_enabled:
            return
        heard_ms = self.call.played_ms(playing.reply)
        if not self.call.clear():
            return
        metrics.count_barge_in()
        self._cut.add(playing.item_id)
        if self._out is playing:
            self._out = None
            self._no_item.set()
        self.log.add("event", "barge_in", f"reply cut off at {heard_ms} ms")
        if self.session is not None:
            try:
                await self.session.truncate(playing.item_id, heard_ms)
            except ProviderError as exc:
                log.warning("call %s: truncate failed: %s", self.call, exc)

    # --- tools -------------------------------------------------------------------------

    def _spawn(self, coro: object) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tool(self, event: ToolCall) -> None:
        try:
            args = parse_arguments(event.arguments)
        except ValueError as exc:
            args = None
            result = ToolResult(json.dumps({"error": f"arguments: {exc}"}), error=True)
        if args is None:
            pass
        elif event.name == "hangup" and "hangup" in self.tools.names:
            result = ToolResult(json.dumps({"success": True, "message": "Ending call..."}))
        elif event.name == "send_dtmf" and "send_dtmf" in self.tools.names:
            result = self._press(str(args.get("digits", "")))
        elif event.name == "transfer" and "transfer" in self.tools.names:
            number = self.tools.transfer_number(str(args.get("to", "")))
            result = ToolResult(
                json.dumps({"success": True} if number else {"error": "unknown target"}),
                error=number is None,
            )
        else:
            result = await self.tools.run(event.name, event.arguments, self.context)
        self._record_tool(event, result)
        action = event.name if args is not None and not result.error else ""
        respond = action not in ("hangup", "send_dtmf", "transfer")
        if self.session is not None:
            try:
                await self.session.send_tool_result(event.call_id, result.output, respond=respond)
            except ProviderError as exc:
                log.warning("call %s: tool result not sent: %s", self.call, exc)
        if action == "hangup":
            self._ending = BOT_HANGUP
            await self._hang_up_after_audio(BOT_HANGUP)
        elif action == "transfer":
            await self._transfer(self.tools.transfer_number(str(args.get("to", ""))) or "")

    def _press(self, digits: str) -> ToolResult:
        try:
            self.call.send_dtmf(digits)  # queued after the audio before it
        except (VoicehostError, ValueError) as exc:
            return ToolResult(json.dumps({"error": str(exc)}), error=True)
        turn = ConversationTurn("bot", digits, kind="dtmf")
        self.log.add("event", "send_dtmf", digits, turn=turn)
        return ToolResult(json.dumps({"success": True, "digits_sent": digits}))

    def _record_tool(self, event: ToolCall, result: ToolResult) -> None:
        use = ToolUse(event.name, event.arguments, result.output, event.call_id, result.error)
        at_ms = self.log.ms()
        turn = ConversationTurn.for_tool(use)
        self.log.add("event", "tool_call", f"{event.name}({event.arguments})", at_ms, turn)
        text = f"error: {result.output}" if result.error else result.output
        self.log.add("event", "tool_result", text, at_ms)

    async def _played(self) -> None:
        """Wait until the bot's audio so far has played (its final mark echoed), at most
        ``_PLAYED_TIMEOUT_S``."""
        try:
            async with asyncio.timeout(_PLAYED_TIMEOUT_S):
                await self._no_item.wait()  # the response has sent all its audio
                if self._playing is not None:
                    await self._playing.reply.wait()
        except Exception as exc:  # timed out, or the reply failed: hang up all the same
            log.info("call %s: audio before the hang-up not played: %r", self.call, exc)

    async def _hang_up_after_audio(self, reason: str) -> None:
        await self._played()
        await self.call.hangup(reason)

    async def _transfer(self, number: str) -> None:
        self.log.add("event", "transfer", number)
        await self._played()
        try:
            await self.call.transfer(number, message="")
        except VoicehostError as exc:
            log.warning("call %s: transfer to %s failed: %s", self.call, number, exc)
            self.log.add("event", "transfer", f"failed: {exc}")

    def _session_limit(self) -> None:
        if self._ending is not None or self.session is None:
            return
        log.info("call %s: near max_session_s; asking for a goodbye", self.call)
        self._ending = MAX_DURATION
        self._spawn(self.session.say(_GOODBYE))
