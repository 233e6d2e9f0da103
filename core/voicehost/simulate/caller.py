"""The caller side of ``voicehost simulate``: one call played through the Twilio simulator
(:mod:`voicehost.testing.twilio`), turn by turn, with timings.

Per call: place it (signed webhook → TwiML → WebSocket ``start``) and wait for the greeting;
for each file play it as 20 ms μ-law frames (real-time pace, or at once followed by 1 s of
silence for endpointing), wait until the bot's reply has played (the ``mark`` of each of its
sentences echoed, and no next sentence within :data:`SENTENCE_GAP_S`) or the reply timeout
passes, pause; between files the caller line carries silence at real-time pace,
as a phone line does; then ``stop``. Times are ms from the stream's start. The caller's final
transcripts and the bot's text come from the server's call records
(``GET /api/calls/{call_sid}``); without them only audio timings are known. Both sides'
audio, with the time each frame was sent or received, come back as
:class:`~voicehost.simulate.timeline.CallAudio` (``--out`` writes it as a two-track WAV).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import attrs
from aiohttp import web

from voicehost.app.assembly import AppConfig, build_serve_app, load_app_config, preload_providers
from voicehost.server import make_runner
from voicehost.simulate.timeline import CallAudio
from voicehost.testing.twilio import SimulatedCall, TwilioSimulator

FRAME_BYTES = 160
SILENCE = b"\xff" * FRAME_BYTES
FAST_TAIL_FRAMES = 50  # 1 s of silence after a file in --fast mode, so endpointing fires
#: The host speaks a reply sentence by sentence, each with its own mark: after a mark echo the
#: reply may go on with its next sentence once that is synthesized (the TTS's first-byte
#: latency), so a reply counts as over when no audio followed its last echoed mark this long.
SENTENCE_GAP_S = 0.5
#: How long the records of a turn the bot answered may lag its last mark (the host writes the
#: bot's text once it has played, what the caller heard), s.
RECORDS_WAIT_S = 2.0


@attrs.define
class Turn:
    """One caller input (or the greeting, ``file`` None) and what the bot did after it.

    ``file`` is the input's label: a file's name, or a ``--say`` text in double quotes.
    Times are ms from the stream's start; None when it did not happen.
    """

    file: str | None
    caller_start_ms: float | None = None
    caller_end_ms: float | None = None
    first_audio_ms: float | None = None
    reply_end_ms: float | None = None
    audio_ms: float = 0.0
    records: list[dict[str, Any]] = attrs.field(factory=list)

    @property
    def response_ms(self) -> float | None:
        """From the end of the caller's audio to the bot's first audio (None for the greeting
        or when the bot did not answer)."""
        if self.first_audio_ms is None or self.caller_end_ms is None:
            return None
        return self.first_audio_ms - self.caller_end_ms

    def as_json(self) -> dict[str, Any]:
        """The turn in ``simulate --json`` (README): its input label (None: the greeting),
        the times in ms (rounded to 0.1 ms; None when it did not happen) and the records."""

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value, 1)

        return {
            "input": self.file,
            "caller_start_ms": ms(self.caller_start_ms),
            "caller_end_ms": ms(self.caller_end_ms),
            "first_audio_ms": ms(self.first_audio_ms),
            "response_ms": ms(self.response_ms),
            "reply_end_ms": ms(self.reply_end_ms),
            "audio_ms": ms(self.audio_ms),
            "records": self.records,
        }


@attrs.define
class SimulationResult:
    """What a simulated call did.

    Attributes:
        call_sid: the call's SID.
        turns: the greeting (when there was one) and one turn per caller input.
        bot_audio: every μ-law byte the bot sent, joined.
        hung_up_by_bot: the server ended the call (the bot hung up), not the caller.
        records_available: the server answered ``GET /api/calls/{call_sid}``.
        audio: both sides with their times (for the two-track WAV).
    """

    call_sid: str
    turns: list[Turn]
    bot_audio: bytes
    hung_up_by_bot: bool
    records_available: bool
    audio: CallAudio | None = None

    @property
    def bot_answered(self) -> bool:
        """The bot sent audio at all (a greeting or a reply)."""
        return bool(self.bot_audio)

    def as_json(self) -> dict[str, Any]:
        """The ``simulate --json`` document (README)."""
        return {
            "call_sid": self.call_sid,
            "bot_answered": self.bot_answered,
            "hung_up_by_bot": self.hung_up_by_bot,
            "records_available": self.records_available,
            "bot_audio_ms": round(len(self.bot_audio) / 8, 1),
            "turns": [turn.as_json() for turn in self.turns],
        }


class CallerLine:
    """The caller's side of the line: silence every 20 ms unless a file is playing."""

    def __init__(self, call: SimulatedCall) -> None:
        self.call = call
        self.playing = False
        self._task = asyncio.get_running_loop().create_task(self._silence())

    async def _silence(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while not self.call.ws.closed:
            due += 0.02
            await asyncio.sleep(max(0.0, due - loop.time()))
            if loop.time() - due > 0.2:  # a file played meanwhile: re-anchor the schedule
                due = loop.time()
            if not self.playing:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.call.send_media(SILENCE)

    async def play(self, ulaw: bytes, *, fast: bool) -> None:
        """Send ``ulaw`` (μ-law 8 kHz) as the caller's audio, in 20 ms frames at real-time pace,
        or all at once when ``fast`` (then followed by silence, so endpointing fires)."""
        self.playing = True
        try:
            await self.call.play(ulaw, speed=math.inf if fast else 1.0)
            if fast:
                await self.call.play(SILENCE * FAST_TAIL_FRAMES, speed=math.inf)
        finally:
            self.playing = False

    async def close(self) -> None:
        """Stop the background silence."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def _records(
    sim: TwilioSimulator, call_sid: str, api_token: str | None
) -> list[dict[str, Any]] | None:
    headers = {"Authorization": f"Bearer {api_token}"} if api_token else {}
    try:
        async with sim.session.get(
            f"{sim.base_url}/api/calls/{call_sid}",
            headers=headers,
            timeout=aiohttp.ClientTimeout(5),
        ) as response:
            if response.status != 200:
                return None
            body = await response.json()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    turns = body.get("turns") if isinstance(body, dict) else None
    return turns if isinstance(turns, list) else None


async def wait_reply(
    call: SimulatedCall,
    turn: Turn,
    t0: float,
    timeout_s: float,
    progress: Callable[[str], None],
    idle_s: float = 3.0,
    gap_s: float = SENTENCE_GAP_S,
) -> None:
    """Wait for the bot's next reply: its first audio within ``timeout_s``, then until the
    mark of its last sentence has been echoed (it has played) and no next sentence began
    within ``gap_s``, or no audio came for ``idle_s`` seconds after the audio received so far
    has played (a server that sends no marks). ``turn.reply_end_ms`` is when its last mark
    was echoed (or the wait ended)."""
    start_bytes = len(call.received_audio)
    start_frames = len(call.frame_times)
    deadline = time.monotonic() + timeout_s
    marks_at_first_audio: int | None = None
    played_at: float | None = None  # every mark received so far echoed, since then
    while call.close_code is None and not call.ws.closed:
        now = time.monotonic()
        if marks_at_first_audio is None:
            if len(call.frame_times) > start_frames:
                turn.first_audio_ms = (call.frame_times[start_frames] - t0) * 1000
                marks_at_first_audio = len(call.events_of("mark"))
            elif now >= deadline:
                break
            else:
                progress(f"waiting for the bot {timeout_s - (deadline - now):4.1f} s")
        if marks_at_first_audio is not None:
            progress(f"bot speaking {(len(call.received_audio) - start_bytes) / 8000:4.1f} s")
            received = len(call.events_of("mark"))
            if received > marks_at_first_audio and len(call.echoed_marks) >= received:
                if played_at is None or call.frame_times[-1] > played_at:
                    played_at = now if played_at is None else max(now, call.frame_times[-1])
                elif now - played_at >= gap_s:
                    break
            else:
                played_at = None
            if now - max(call.frame_times[-1], call.played_until) > idle_s:
                break
        await asyncio.sleep(0.05)
    turn.audio_ms = (len(call.received_audio) - start_bytes) / 8
    if turn.first_audio_ms is not None:
        end = played_at if played_at is not None else time.monotonic()
        turn.reply_end_ms = (end - t0) * 1000


async def simulate_call(
    sim: TwilioSimulator,
    files: list[tuple[str, bytes]],
    *,
    fast: bool = False,
    pause_ms: int = 1000,
    reply_timeout_s: float = 30.0,
    greeting_timeout_s: float = 10.0,
    api_token: str | None = None,
    from_: str = "+15005550006",
    to: str = "+15005550001",
    on_turn: Callable[[Turn], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> SimulationResult:
    """Play ``files`` (``(label, μ-law 8 kHz bytes)``) as the caller of one call.

    Waits up to ``greeting_timeout_s`` for a greeting before the first file, and up to
    ``reply_timeout_s`` for the bot's first reply audio after each.

    Raises:
        AssertionError: the server did not answer the voice webhook with a stream (the
            simulator's message says why: 403 for a bad signature …).
    """
    show = progress or (lambda _text: None)
    call = await sim.start_call(from_=from_, to=to)
    t0 = time.monotonic()
    line = CallerLine(call)
    turns: list[Turn] = []
    seen_records = 0
    records_ok = False

    async def finish(turn: Turn) -> None:
        nonlocal seen_records, records_ok
        records = await _records(sim, call.call_sid, api_token)
        deadline = time.monotonic() + RECORDS_WAIT_S
        # The bot's text is recorded once it has played: it may lag the last mark a little.
        while (
            records is not None
            and turn.first_audio_ms is not None
            and not any(r.get("role") == "bot" for r in records[seen_records:])
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.02)
            records = await _records(sim, call.call_sid, api_token)
        if records is not None:
            records_ok = True
            turn.records = records[seen_records:]
            seen_records = len(records)
        turns.append(turn)
        if on_turn is not None:
            on_turn(turn)

    try:
        greeting = Turn(None)
        await wait_reply(call, greeting, t0, greeting_timeout_s, show)
        if greeting.first_audio_ms is not None:
            await finish(greeting)
        for index, (name, ulaw) in enumerate(files):
            if call.ws.closed:
                break
            turn = Turn(name)
            turn.caller_start_ms = (time.monotonic() - t0) * 1000
            player = asyncio.ensure_future(line.play(ulaw, fast=fast))
            total = len(ulaw) / 8000
            while not player.done():
                played = (time.monotonic() - t0) - turn.caller_start_ms / 1000
                show(f"[{index + 1}/{len(files)}] {name} ▶ {min(played, total):4.1f}/{total:.1f} s")
                await asyncio.wait({player}, timeout=0.1)
            player.result()
            turn.caller_end_ms = (time.monotonic() - t0) * 1000  # the last frame has left
            await wait_reply(
                call,
                turn,
                t0,
                reply_timeout_s,
                lambda s, i=index: show(f"[{i + 1}/{len(files)}] {s}"),
            )
            await finish(turn)
            if index + 1 < len(files) and pause_ms > 0 and not call.ws.closed:
                show(f"[{index + 1}/{len(files)}] pause")
                await asyncio.sleep(pause_ms / 1000)
        hung_up = call.ws.closed or call.close_code is not None
        await line.close()
        if not hung_up:
            await call.stop()
        else:
            await call.close()
    finally:
        await line.close()
        show("")
    return SimulationResult(
        call.call_sid,
        turns,
        bytes(call.received_audio),
        hung_up,
        records_ok,
        CallAudio.of(call, t0),
    )


def format_turn(turn: Turn) -> list[str]:
    """Human-readable lines for one turn: caller audio, final transcript, bot reply timing."""
    lines = []
    if turn.file is None:
        lines.append("greeting")
    else:
        lines.append(
            f"caller  {turn.file}: audio {turn.caller_start_ms:.0f}–{turn.caller_end_ms:.0f} ms"
        )
    for record in turn.records:
        if record["role"] == "caller":
            lines.append(f"  caller  final transcript at {record['at_ms']} ms: {record['text']!r}")
        elif record["role"] == "bot":
            lines.append(
                f"  bot     {record['kind']} text at {record['at_ms']} ms: {record['text']!r}"
            )
        else:
            lines.append(f"  event   {record['kind']} at {record['at_ms']} ms")
    if turn.first_audio_ms is None:
        lines.append("  bot     no reply audio")
    else:
        after = ""
        if turn.caller_end_ms is not None:
            after = f", {turn.first_audio_ms - turn.caller_end_ms:.0f} ms after the caller stopped"
        lines.append(
            f"  bot     first audio at {turn.first_audio_ms:.0f} ms{after}; "
            f"{turn.audio_ms / 1000:.2f} s of audio"
        )
    return lines


@contextlib.asynccontextmanager
async def local_server(config_path: str | None) -> AsyncIterator[tuple[str, AppConfig]]:
    """An in-process ``voicehost serve`` on 127.0.0.1 (a free port), built from
    ``plugins.toml`` as ``serve`` builds it (same validation, handler, records and routes);
    yields ``(base URL, the app config)``.

    Raises:
        VoicehostError: the configuration is wrong (as ``voicehost serve`` would say).
    """
    config = load_app_config(config_path)
    await asyncio.to_thread(preload_providers, config.runtime)  # as serve does before it listens
    app = build_serve_app(config)
    runner = make_runner(app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}", config
    finally:
        await runner.cleanup()
