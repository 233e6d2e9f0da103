"""Host overhead of the ``openai`` responder on a real call: the model's first token to the
first ``media`` frame sent to Twilio, printed as numbers (no assertions).

Run: ``uv run python bench/llm_responder.py [--turns 100] [--piper-turns 50] [--tts fake,piper]``.

Three processes, so each figure counts only what it names:

* a **model** process: the fake Chat Completions server (``tests/fakes/openai_chat.py``)
  answering every request with its headers and role chunk at once, then, after
  ``--ttft-ms`` (the model "thinking"; the host waits idle, as with a real model), the
  answer as word-sized content deltas written back to back (a model infinitely fast from
  then on, so what is timed is the host, not the model);
* the **host** process (this one): the app ``voicehost serve`` runs (``build_serve_app``:
  the ``openai`` responder on the official SDK, the conversation speaking sentence by
  sentence, records in a temporary file), with the fake STT and, per run, the fake TTS
  (a tone, made at once) or Piper (the offline voice);
* a **caller** process: the Twilio simulator on the Media Stream.

A turn is the fake STT's final transcript (fired in the host process), the model's streamed
answer, its sentences spoken, and the last mark echoed; the next turn starts after it. The
first ``--warmup`` turns (the SDK's connection, Piper's first run) are not counted.

Figures, per TTS:

* **first token → first frame sent (ms)**: from the fake model writing the answer's first
  content delta to the host handing the turn's first 160-byte ``media`` frame to the socket
  (``Playback.frame_times``): SSE read by the SDK, the responder, sentence cutting, the
  reply queue, the TTS's time to first audio, conversion and framing. Also, along the way:
  **→ sentence at TTS** (the first sentence handed to ``synthesize``), **→ TTS first audio**
  (its first audio chunk back), and **→ first frame received** (the simulator got it: adds
  the socket hop). p50 / p99 / max over the counted turns. Targets (issue 11): fake TTS
  p99 ≤ 5 ms (host overhead), Piper p50 ≤ 80 ms.
* **final → request at model (ms)**: from the fake STT's final transcript to the fake model
  receiving the request (the conversation, the responder building the messages, the SDK
  preparing and sending the request); not part of the target, shown as the host's share
  of the time before the model can start.
* **host CPU per turn (ms)**: CPU time of the host process (all threads: the event loop,
  Piper's) over the counted turns, divided by their number; a turn also plays its reply's
  audio in real time (its length is printed).

All timestamps are ``time.monotonic()`` (CLOCK_MONOTONIC, shared by the processes).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

import voicehost_openai_responder  # noqa: E402
from voicehost.app.assembly import (  # noqa: E402
    AppConfig,
    build_serve_app,
    create_handler,
    load_app_config,
    preload_providers,
)
from voicehost.config import Settings  # noqa: E402
from voicehost.conversation import ResponderCallHandler  # noqa: E402
from voicehost.plugins import PluginHost  # noqa: E402
from voicehost.server import Call, CallHandler  # noqa: E402
from voicehost.testing.providers import FakeProvidersPlugin  # noqa: E402
from voicehost.testing.twilio import TwilioSimulator  # noqa: E402

API_KEY = "sk-bench"
nan = float("nan")
#: The model's answer: two sentences, as word-sized content deltas.
REPLY = "Sure thing. We open at nine tomorrow morning, and close at five."
#: Fake TTS: ms of tone per character of text.
FAKE_MS_PER_CHAR = 5


def deltas(text: str) -> tuple[str, ...]:
    """``text`` as a model streams it: one delta a word, each with its leading space."""
    words = text.split(" ")
    return (words[0], *(" " + word for word in words[1:]))


# --- model process ---------------------------------------------------------------------------


class _FirstTokenPause:
    """Stands in for the fake server's ``asyncio`` module: the pause it takes before each
    chunk after the first (``ChatPlan.delay_s``) becomes ``ttft_s`` before the answer's
    first content delta (right after the role chunk) and none before the others, as a model
    that thinks, then streams."""

    def __init__(self, ttft_s: float) -> None:
        self.ttft_s = ttft_s
        self.first = False  # the next pause is the one before the first content delta

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, _delay: float) -> None:
        first, self.first = self.first, False
        await asyncio.sleep(self.ttft_s if first else 0)


def _model_process(reply: str, ttft_s: float, conn: Connection) -> None:
    asyncio.run(_model_main(reply, ttft_s, conn))


async def _model_main(reply: str, ttft_s: float, conn: Connection) -> None:
    import fakes.openai_chat as chat

    first_token: dict[str, float] = {}  # completion id → when its first content delta was written
    plain_sse = chat.sse
    pause = _FirstTokenPause(ttft_s)

    def timed_sse(obj: dict[str, Any]) -> bytes:
        # The fake builds each event with sse() right before writing it.
        delta = (obj.get("choices") or [{}])[0].get("delta") or {}
        if delta.get("role"):
            pause.first = True
        elif delta.get("content") and obj["id"] not in first_token:
            first_token[obj["id"]] = time.monotonic()
        return plain_sse(obj)

    chat.sse = timed_sse  # type: ignore[assignment]
    chat.asyncio = pause  # type: ignore[assignment]
    async with chat.FakeOpenAIChat(api_key=API_KEY) as fake:
        fake.default_plan = chat.ChatPlan(text=deltas(reply), delay_s=1.0 if ttft_s else 0.0)
        conn.send(fake.base_url)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        # Completion ids are chatcmpl-fake<n>, n = 1, 2 … in request order.
        ids = [f"chatcmpl-fake{n}" for n in range(1, len(fake.requests) + 1)]
        conn.send(([first_token.get(i) for i in ids], [r.received_at for r in fake.requests]))


# --- caller (Twilio simulator) process -----------------------------------------------------------


def _caller_process(base_url: str, conn: Connection) -> None:
    asyncio.run(_caller_main(base_url, conn))


async def _caller_main(base_url: str, conn: Connection) -> None:
    async with TwilioSimulator(base_url) as sim:
        call = await sim.start_call()
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        frame_times = list(call.frame_times)
        await call.stop()
    conn.send(frame_times)


# --- host process ------------------------------------------------------------------------------


class _TimedHandler(ResponderCallHandler):
    """The serve handler; keeps the call's frame send times and signals each turn's end."""

    call: Call | None = None
    started: asyncio.Event
    turn_done: asyncio.Event

    async def on_call_start(self, call: Call) -> None:
        call.playback.frame_times = []
        self.call = call
        await super().on_call_start(call)
        self.started.set()

    async def on_transcript(self, call: Call, text: str) -> None:
        await super().on_transcript(call, text)  # returns once the reply has played
        self.turn_done.set()


def _host_plugins(tts: str) -> tuple[PluginHost, FakeProvidersPlugin]:
    host = PluginHost()
    host.load_builtins()
    fakes = FakeProvidersPlugin()
    host.register(fakes, name="voicehost-fakes")
    host.register(voicehost_openai_responder, name="voicehost-openai-responder")
    if tts == "piper":
        import voicehost_piper_tts

        host.register(voicehost_piper_tts, name="voicehost-piper-tts")
    return host, fakes


def _document(tts: str, model_url: str, db: Path) -> dict[str, Any]:
    tts_table: dict[str, Any] = {"provider": tts}
    if tts == "fake":
        tts_table["fake"] = {"ms_per_char": FAKE_MS_PER_CHAR}
    return {
        "stt": {"provider": "fake"},
        "tts": tts_table,
        "responder": {
            "provider": "openai",
            "openai": {"api_key": API_KEY, "base_url": model_url, "tools": ["hangup"]},
        },
        "records": {"path": str(db)},
    }


async def _serve(config: AppConfig) -> tuple[web.AppRunner, str, _TimedHandler]:
    made: list[_TimedHandler] = []

    def timed(app_config: AppConfig) -> CallHandler:
        base = create_handler(app_config)
        assert isinstance(base, ResponderCallHandler)
        handler = _TimedHandler(base.responder, base.store)
        handler.started, handler.turn_done = asyncio.Event(), asyncio.Event()
        made.append(handler)
        return handler

    app = build_serve_app(config, handler_factory=timed)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}", made[0]


async def _bench(
    tts: str, turns: int, warmup: int, reply: str, ttft_s: float = 0.1
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    loop = asyncio.get_running_loop()
    model_conn, model_end = ctx.Pipe()
    model = ctx.Process(target=_model_process, args=(reply, ttft_s, model_end), daemon=True)
    model.start()
    model_url = await loop.run_in_executor(None, model_conn.recv)

    with tempfile.TemporaryDirectory() as tmp:
        plugins, fakes = _host_plugins(tts)
        settings = Settings.from_dict(_document(tts, model_url, Path(tmp) / "calls.db"), {})
        config = load_app_config(settings=settings, host=plugins)
        await asyncio.to_thread(preload_providers, config.runtime)
        choice = config.runtime.tts
        assert choice is not None
        provider = choice.provider
        asked: list[float] = []  # when each sentence was handed to the TTS
        audio: list[float] = []  # when its first audio came back (NaN: none)
        synthesize = provider.synthesize

        def timed_synthesize(text: str, tts_config: Any) -> Any:
            asked.append(time.monotonic())
            audio.append(nan)
            return _first_audio(synthesize(text, tts_config), audio, len(audio) - 1)

        provider.synthesize = timed_synthesize  # type: ignore[method-assign]
        runner, base_url, handler = await _serve(config)
        caller_conn, caller_end = ctx.Pipe()
        caller = ctx.Process(target=_caller_process, args=(base_url, caller_end), daemon=True)
        caller.start()
        try:
            await asyncio.wait_for(handler.started.wait(), 60)
            assert handler.call is not None
            frame_times = handler.call.playback.frame_times
            assert frame_times is not None
            session = await fakes.stt.wait_for_session(timeout=30)
            firsts: list[tuple[int, int, int]] = []  # per turn: frame, sentence, request index
            finals: list[float] = []  # when each turn's final transcript was fired
            cpu = wall = 0.0
            reply_frames = 0
            for turn in range(warmup + turns):
                if turn == warmup:
                    cpu, wall = time.process_time(), time.monotonic()
                frames_before, asked_before = len(frame_times), len(asked)
                finals.append(time.monotonic())
                handler.turn_done.clear()
                session.final(f"question number {turn}")
                await asyncio.wait_for(handler.turn_done.wait(), 60)
                if turn >= warmup:
                    firsts.append((frames_before, asked_before, turn))
                    reply_frames = len(frame_times) - frames_before
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            sent = [frame_times[f] for f, _, _ in firsts]
            at_tts = [asked[a] for _, a, _ in firsts]
            tts_audio = [audio[a] for _, a, _ in firsts]
        finally:
            caller_conn.send("stop")
            received = await loop.run_in_executor(None, caller_conn.recv)
            model_conn.send("report")
            tokens, requests = await loop.run_in_executor(None, model_conn.recv)
            await runner.cleanup()
            caller.join(10)
            model.join(10)

    token = [tokens[r] for _, _, r in firsts]
    request = [requests[r] for _, _, r in firsts]
    final = [finals[r] for _, _, r in firsts]
    return {
        "tts": tts,
        "request": _ms(request, final),
        "send": _ms(sent, token),
        "receive": _ms([received[f] if f < len(received) else nan for f, _, _ in firsts], token),
        "at_tts": _ms(at_tts, token),
        "tts_audio": _ms(tts_audio, token),
        "cpu_ms": cpu / turns * 1000,
        "wall_s": wall / turns,
        "audio_s": reply_frames * 0.02,
        "turns": turns,
    }


async def _first_audio(stream: AsyncIterator[bytes], into: list[float], index: int):
    """``stream`` as it is, noting when its first non-empty chunk came in ``into[index]``."""
    try:
        async for chunk in stream:
            if chunk and into[index] != into[index]:  # still NaN
                into[index] = time.monotonic()
            yield chunk
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


def _ms(later: list[float], earlier: list[float | None]) -> list[float]:
    return [
        (b - a) * 1000
        for b, a in zip(later, earlier, strict=False)
        if a is not None and b == b  # not NaN
    ]


def _stats(values: list[float]) -> Iterator[float]:
    for q in (50, 99):
        yield float(np.percentile(values, q)) if values else float("nan")
    yield max(values) if values else float("nan")


ROWS = (
    ("final → request at model", "request"),
    ("first token → sentence at TTS", "at_tts"),
    ("first token → TTS first audio", "tts_audio"),
    ("first token → frame sent", "send"),
    ("first token → frame received", "receive"),
)


def _print(results: list[dict[str, Any]]) -> None:
    print(f"\n{'TTS':<6} {'':<30} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}   {'n':>4}")
    for result in results:
        for label, key in ROWS:
            p50, p99, top = _stats(result[key])
            print(
                f"{result['tts']:<6} {label:<30} {p50:8.2f} {p99:8.2f} {top:8.2f}"
                f"   {len(result[key]):4d}"
            )
    print(f"\n{'TTS':<6} {'host CPU / turn':>16} {'wall / turn':>12} {'reply audio':>12}")
    for result in results:
        print(
            f"{result['tts']:<6} {result['cpu_ms']:13.1f} ms {result['wall_s']:10.2f} s"
            f" {result['audio_s']:10.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=100, help="counted turns with the fake TTS")
    parser.add_argument("--piper-turns", type=int, default=50, help="counted turns with Piper")
    parser.add_argument("--warmup", type=int, default=3, help="turns not counted, per run")
    parser.add_argument("--tts", default="fake,piper", help="comma-separated: fake, piper")
    parser.add_argument("--reply", default=REPLY, help="the model's answer")
    parser.add_argument(
        "--ttft-ms",
        type=float,
        default=100.0,
        help="the model's pause before its first token (0: right behind the headers)",
    )
    args = parser.parse_args()
    print(
        f"openai responder, fake model (first token after {args.ttft_ms:g} ms, then the rest "
        f"at once); reply {args.reply!r}; {os.cpu_count()} CPUs"
    )
    results = []
    for tts in args.tts.split(","):
        turns = args.piper_turns if tts == "piper" else args.turns
        print(f"{tts}: {args.warmup} warm-up + {turns} turns …", flush=True)
        run = _bench(tts, turns, args.warmup, args.reply, args.ttft_ms / 1000)
        results.append(asyncio.run(run))
    _print(results)


if __name__ == "__main__":
    main()
