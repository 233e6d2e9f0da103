"""What the offline benchmarks share: an in-process ``voicehost serve`` with the offline
default stack (Whisper STT, Piper TTS, scripted responder without hang-ups) and percentiles."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from aiohttp import web

from voicehost.app.assembly import (
    AppConfig,
    build_serve_app,
    create_handler,
    load_app_config,
    preload_providers,
)
from voicehost.config import Settings
from voicehost.conversation import ResponderCallHandler
from voicehost.responders.scripted import ScriptedConfig
from voicehost.server import CallHandler

HandlerT = TypeVar("HandlerT", bound=ResponderCallHandler)


def pct(values: list[float], q: float) -> float:
    """The ``q``-th percentile of ``values``; NaN when there are none."""
    return float(np.percentile(values, q)) if values else math.nan


async def start_offline_server(
    db: Path,
    handler_class: type[HandlerT],
    stt_config: dict[str, Any] | None = None,
    *,
    turn: str | None = None,
    server_config: dict[str, Any] | None = None,
) -> tuple[web.AppRunner, str, HandlerT]:
    """Serve the offline stack on 127.0.0.1 (a free port), models preloaded, call records in
    ``db``; the scripted rules never hang up, so a benchmark call runs to its end.

    ``handler_class`` (a :class:`ResponderCallHandler` subclass that notes timings) is built
    from the configured responder and store. ``stt_config`` overrides ``[stt.whisper]`` keys;
    ``turn`` names an end-of-turn detector (``[turn] provider``, e.g. ``smart-turn``);
    ``server_config`` overrides ``[server]`` keys.

    Returns:
        ``(runner, base URL, handler)``; ``await runner.cleanup()`` when done.
    """
    rules = [rule.model_dump() for rule in ScriptedConfig().rules if not rule.hangup]
    plugins = ["voicehost-whisper-stt", "voicehost-piper-tts"]
    document: dict[str, Any] = {
        "stt": {"provider": "whisper", "whisper": stt_config or {}},
        "tts": {"provider": "piper"},
        "responder": {"provider": "scripted", "scripted": {"rules": rules}},
        "records": {"path": str(db)},
        "plugins": {"enabled": plugins},
        "server": {"max_pending_connections_per_ip": 16, **(server_config or {})},
    }
    if turn:
        document["turn"] = {"provider": turn}
        plugins.append(f"voicehost-{turn}")
    settings = Settings.from_dict(document)
    config = load_app_config(settings=settings)
    await asyncio.to_thread(preload_providers, config.runtime)
    made: list[HandlerT] = []

    def timed_handler(app_config: AppConfig) -> CallHandler:
        base = create_handler(app_config)
        assert isinstance(base, ResponderCallHandler)
        made.append(handler_class(base.responder, base.store))
        return made[0]

    app = build_serve_app(config, handler_factory=timed_handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}", made[0]
