"""Silence at sentence boundaries of a long spoken reply, with Piper, at 1 and 2 simultaneous
calls, with and without synthesising the next sentence while the current one plays
(:mod:`voicehost.server.prefetch`). Printed figures, no assertions.

Run: ``uv run python bench/sentence_gaps.py [--replies 3] [--calls 1,2]``.

The app ``voicehost serve`` runs (in this process) with the fake STT (so each turn starts at a
known moment), the scripted responder answering with five sentences, and Piper. The caller is
the Twilio simulator at real-time speed. A reply is spoken sentence by sentence, each its own
``say`` (and mark). For each boundary between two sentences, the **gap** is the silence the
caller hears: the time from the end of the first sentence's audio at the simulated phone
(its playhead: frames play back to back at 20 ms each, from their arrival) to the arrival of
the next sentence's first frame, 0 when it arrived in time. p50 / p95 / max over the
boundaries of all replies of all calls.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from voicehost.app.assembly import build_serve_app, load_app_config, preload_providers
from voicehost.config import Settings
from voicehost.plugins import load_plugin_host
from voicehost.server.playback import Playback
from voicehost.testing import TwilioSimulator
from voicehost.testing.providers import FakeProvidersPlugin

STORY = (
    "Once upon a time there was a small lighthouse on a rocky island. "
    "Every night its keeper climbed the stairs to light the lamp. "
    "Ships far out at sea would see the beam and steer away from the rocks. "
    "One winter a storm broke the great window at the top of the tower. "
    "The keeper held a lantern in the wind until the morning came."
)


SENTENCES = 5


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def boundary_gaps(events: list[dict[str, Any]], per_reply: int) -> list[float]:
    """Silence (s) before the first frame of each sentence but the first of its reply, from
    the simulator's received messages (``_t``: arrival time); ``per_reply`` sentences (marks)
    make a reply."""
    gaps: list[float] = []
    playhead = 0.0
    marks = 0
    after_mark = False
    for event in events:
        if event.get("event") == "mark":
            marks += 1
            after_mark = marks % per_reply != 0  # not the end of a whole reply
        elif event.get("event") == "media":
            arrived = event["_t"]
            if after_mark:
                gaps.append(max(0.0, arrived - playhead))
            after_mark = False
            playhead = max(playhead, arrived) + 0.02
    return gaps


async def run(calls: int, replies: int, prefetch: bool) -> list[float]:
    """Gaps (s) over ``replies`` replies on each of ``calls`` simultaneous calls."""
    host = load_plugin_host(
        Settings.from_dict({"plugins": {"enabled": ["voicehost-piper-tts"]}}), environ={}
    )
    fakes = FakeProvidersPlugin()
    host.register(fakes, name="voicehost-fakes")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_dict(
            {
                "stt": {"provider": "fake"},
                "tts": {"provider": "piper"},
                "responder": {
                    "provider": "scripted",
                    "scripted": {"greeting": "", "rules": [{"match": "story", "reply": STORY}]},
                },
                "records": {"path": str(Path(tmp) / "calls.db")},
                "server": {"max_pending_connections_per_ip": 64},
            },
            environ={},
        )
        config = load_app_config(settings=settings, host=host)
        await asyncio.to_thread(preload_providers, config.runtime)
        original = Playback._prefetch_next
        if not prefetch:
            Playback._prefetch_next = lambda self: None  # type: ignore[method-assign]
        runner = web.AppRunner(build_serve_app(config), handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host_, port = runner.addresses[0][:2]
        gaps: list[float] = []
        try:
            async with TwilioSimulator(f"http://{host_}:{port}", speed=1.0) as sim:
                sim_calls = [await sim.start_call() for _ in range(calls)]
                sessions = [await fakes.stt.wait_for_session(i) for i in range(calls)]
                for n in range(replies):
                    marks = SENTENCES * (n + 1)
                    for session in sessions:
                        session.final("tell me a story")
                    for call in sim_calls:
                        await call.wait_for(
                            lambda c=call, m=marks: (
                                sum(1 for name in c.echoed_marks if "@" not in name) >= m
                            ),
                            timeout=120,
                        )
                for call in sim_calls:
                    gaps += boundary_gaps(call.events, SENTENCES)
                    await call.stop()
        finally:
            Playback._prefetch_next = original  # type: ignore[method-assign]
            await runner.cleanup()
        return gaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replies", type=int, default=3, help="replies per call")
    parser.add_argument("--calls", default="1,2", help="simultaneous calls, comma-separated")
    args = parser.parse_args()
    print("silence at sentence boundaries (Piper, 5-sentence replies), ms")
    print(f"{'calls':>5} {'prefetch':>9} {'p50':>7} {'p95':>7} {'max':>7} {'n':>4}")
    for calls in [int(c) for c in args.calls.split(",")]:
        for prefetch in (False, True):
            gaps = asyncio.run(run(calls, args.replies, prefetch))
            ms = [g * 1000 for g in gaps]
            print(
                f"{calls:>5} {'on' if prefetch else 'off':>9} {pct(ms, 50):>7.0f} "
                f"{pct(ms, 95):>7.0f} {max(ms, default=math.nan):>7.0f} {len(ms):>4}"
            )


if __name__ == "__main__":
    main()
