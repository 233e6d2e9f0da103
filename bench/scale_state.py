"""Scale-out benchmark: what sharing the live call state in Redis costs.

Run::

    uv run python bench/scale_state.py [--setups 500] [--calls 200] [--seconds 20]
        [--redis-url redis://…] [--skip-setup] [--skip-load]

Needs ``redis-server`` on ``PATH`` unless ``--redis-url`` names a running one (then keys go
under a fresh prefix).

1. **Webhook → stream start** (``--setups`` calls, one after another, in process, on
   loopback): the signed voice webhook POST, the Media Streams upgrade, ``connected`` and
   ``start``, until the call is live on the server (its handler's ``on_call_start``), for
   the transport with :class:`~voicehost.server.MemoryLiveState` and with
   :class:`~voicehost.server.redis_state.RedisLiveState`. Printed: p50 / p99 of each, ms,
   and the Redis overhead, measured two ways: the difference of the p50s and of the p99s
   (noisy: it subtracts two distributions that each include the HTTP and WebSocket work),
   and, per call, the time the transport spent awaiting the live state on the path
   (``admit_call`` in the webhook, ``start_stream`` at ``start``: one Lua script, one round
   trip each), p50 / p99 over the calls; and that state work alone on an idle event loop
   (``admit_call`` + ``start_stream`` in a loop, no server), which is the Redis cost without
   the scheduling noise of a loop shared with the simulated Twilio.
2. **CPU per call-second under load** (``--calls`` simultaneous calls of ``--seconds`` s,
   the bench's real ``voicehost serve`` processes and plugin from ``bench/load.py``): one
   instance with in-memory state, then two instances sharing Redis with every call's webhook
   on one instance and its stream on the other. Printed: the servers' summed CPU (utime +
   stime) divided by the calls' summed durations, ms per call-second, and the Redis server's
   own CPU. The load generator is this process (one event loop: at 200 calls on a small
   machine it shares the cores with the servers; the ``late p99`` column says by how much it
   fell behind real time).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiohttp.test_utils import TestServer
from load import TOKEN, Server, write_server_dir
from load_calls import CLK_TCK, process_ticks

from voicehost.server import CallHandler, ServerSettings, build_app
from voicehost.server.live_state import CallRecord, LiveCallState, MemoryLiveState
from voicehost.server.redis_state import RedisLiveState
from voicehost.testing.providers import tone
from voicehost.testing.twilio import SimulatedCall, TwilioSimulator, parse_stream_twiml
from voicehost.testing.twilio_stream import random_sid


def pct(values: list[float], q: float) -> float:
    """The ``q`` percentile (0-100, nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


class _Started(CallHandler):
    def __init__(self) -> None:
        self.started: dict[str, asyncio.Event] = {}

    async def on_call_start(self, call) -> None:  # type: ignore[no-untyped-def]
        self.started.setdefault(call.call_sid, asyncio.Event()).set()


class TimedState:
    """Wraps a live state and adds the time spent in each awaited method to ``spent``, by
    call SID (its first argument, or a record's ``call_sid``)."""

    def __init__(self, inner: LiveCallState) -> None:
        self.inner = inner
        self.spent: dict[str, float] = {}

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        method = getattr(self.inner, name)
        if not asyncio.iscoroutinefunction(method):
            return method

        async def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            sid = getattr(args[0], "call_sid", args[0]) if args else ""
            t0 = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                self.spent[sid] = self.spent.get(sid, 0.0) + time.perf_counter() - t0

        return timed


async def setup_times(live: LiveCallState, n: int) -> tuple[list[float], list[float]]:
    """Seconds from the webhook POST to the call live on the server, and seconds spent
    awaiting the live state on that path, for ``n`` calls."""
    timed = TimedState(live)
    live = timed  # type: ignore[assignment]
    handler = _Started()
    app = build_app(ServerSettings(), handler=handler, live=live)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    times: list[float] = []
    in_state: list[float] = []
    try:
        async with TwilioSimulator(str(server.make_url("")).rstrip("/")) as sim:
            for i in range(n + 20):  # the first 20 warm up
                sid = random_sid("CA")
                started = handler.started.setdefault(sid, asyncio.Event())
                t0 = time.perf_counter()
                call = await sim.start_call(call_sid=sid)
                await started.wait()
                elapsed = time.perf_counter() - t0
                if i >= 20:
                    times.append(elapsed)
                    in_state.append(timed.spent.get(sid, 0.0))
                await call.stop()
                await call.wait_closed(5)
    finally:
        await server.close()
    return times, in_state


async def direct_times(live: LiveCallState, n: int) -> list[float]:
    """Seconds of the state's own work on a call's path, on an idle event loop:
    ``admit_call`` then ``start_stream`` (and the release at the end, not counted)."""
    times: list[float] = []
    for i in range(n + 50):  # the first 50 warm up
        sid = random_sid("CA")
        record = CallRecord(call_sid=sid, from_="+15550001111", status="ringing")
        t0 = time.perf_counter()
        token = await live.admit_call(record)
        await live.start_stream(sid, token, "bench")
        elapsed = time.perf_counter() - t0
        await live.mark_ended(sid, "bench")
        if i >= 50:
            times.append(elapsed)
    return times


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def redis_server(url: str | None):
    """A ``redis://`` URL: ``url``, or a ``redis-server`` started here; yields (url, pid)."""
    if url:
        yield url, None
        return
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (or give --redis-url)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


async def one_call(
    webhook: TwilioSimulator, stream: TwilioSimulator, seconds: float, delay: float
) -> tuple[float, float]:
    """One call (webhook on ``webhook``'s server, stream on ``stream``'s), caller audio in
    real time; returns (duration s, worst lateness s)."""
    await asyncio.sleep(delay)
    t0 = time.monotonic()
    sid = random_sid("CA")
    reply = await webhook.post_form(webhook.webhook_path, webhook.webhook_params(sid))
    if reply.status != 200:
        raise RuntimeError(f"webhook answered {reply.status}")
    url, params = parse_stream_twiml(reply.text)
    call: SimulatedCall = await stream.open_stream(stream.local_stream_url(url), call_sid=sid)
    call.custom_parameters = dict(params)
    await call.send_connected()
    await call.send_start()
    frame = tone(0.02)
    late = 0.0
    start = time.monotonic()
    for i in range(int(seconds / 0.02)):
        due = start + i * 0.02
        now = time.monotonic()
        if due > now:
            await asyncio.sleep(due - now)
        else:
            late = max(late, now - due)
        await call.send_media(frame)
    await call.stop()
    await call.wait_closed(10)
    return time.monotonic() - t0, late


async def load(urls: list[str], calls: int, seconds: float) -> tuple[float, float, int]:
    """``calls`` calls spread over 2 s; webhook on instance i, stream on instance i + 1.
    Returns (summed call seconds, worst lateness s, failed calls)."""
    sims = [TwilioSimulator(u, auth_token=TOKEN, speed=1.0) for u in urls]
    try:
        jobs = [
            one_call(sims[i % len(sims)], sims[(i + 1) % len(sims)], seconds, 2 * i / calls)
            for i in range(calls)
        ]
        results = await asyncio.gather(*jobs, return_exceptions=True)
    finally:
        for sim in sims:
            await sim.close()
    ok = [r for r in results if isinstance(r, tuple)]
    return sum(d for d, _ in ok), max((lt for _, lt in ok), default=0.0), len(results) - len(ok)


def cpu_run(
    n_servers: int, redis_url: str | None, redis_pid: int | None, calls: int, seconds: float
) -> str:
    """One load run; its table row."""
    with tempfile.TemporaryDirectory(prefix="voicehost-scale-") as tmp:
        servers = []
        prefix = "bench" + secrets.token_hex(4)
        for i in range(n_servers):
            root = Path(tmp) / f"i{i}"
            root.mkdir()
            extra = f'[state]\nurl = "{redis_url}"\nprefix = "{prefix}"\n' if redis_url else ""
            config = write_server_dir(root, calls, None, extra, 5.0)
            servers.append(Server(root, config, str(Path(sys.executable).with_name("voicehost"))))
        try:
            pids = [s.proc.pid for s in servers]
            before = [process_ticks(p) for p in pids]
            redis_before = process_ticks(redis_pid) if redis_pid else 0
            call_s, late, failed = asyncio.run(load([s.base_url for s in servers], calls, seconds))
            cpu_ms = sum(process_ticks(p) - b for p, b in zip(pids, before, strict=True))
            cpu_ms *= 1000 / CLK_TCK
            redis_ms = (
                (process_ticks(redis_pid) - redis_before) * 1000 / CLK_TCK if redis_pid else 0
            )
        finally:
            for server in servers:
                server.stop()
    label = f"{n_servers} x {'Redis' if redis_url else 'memory'}"
    per = cpu_ms / call_s if call_s else float("nan")
    return (
        f"{label:<12} {calls:>5} {call_s:>8.0f} {per:>11.2f} {cpu_ms / 1000:>8.1f} "
        f"{redis_ms / 1000:>8.2f} {late * 1000:>9.0f} {failed:>6}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setups", type=int, default=500)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--skip-setup", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    options = parser.parse_args()
    with redis_server(options.redis_url) as (url, pid):
        if not options.skip_setup:
            memory = asyncio.run(setup_times(MemoryLiveState(), options.setups))

            async def with_redis() -> tuple[list[float], list[float]]:
                live = RedisLiveState(url, prefix="bench" + secrets.token_hex(4))
                try:
                    return await setup_times(live, options.setups)
                finally:
                    await live.aclose()

            redis = asyncio.run(with_redis())
            print(f"webhook → stream start, {options.setups} calls, ms (loopback)")
            print(
                f"{'state':<8} {'p50':>7} {'p99':>7} {'mean':>7}   "
                f"{'in state p50':>12} {'p99':>7} {'max':>7}"
            )
            for name, (times, spent) in (("memory", memory), ("Redis", redis)):
                ms = [t * 1000 for t in times]
                st = [t * 1000 for t in spent]
                print(
                    f"{name:<8} {pct(ms, 50):>7.2f} {pct(ms, 99):>7.2f} {statistics.mean(ms):>7.2f}"
                    f"   {pct(st, 50):>12.2f} {pct(st, 99):>7.2f} {max(st):>7.2f}"
                )
            p50 = pct(redis[0], 50) - pct(memory[0], 50)
            p99 = pct(redis[0], 99) - pct(memory[0], 99)
            print(
                f"Redis overhead (difference of the totals): p50 {p50 * 1000:+.2f} ms, "
                f"p99 {p99 * 1000:+.2f} ms"
            )

            async def direct() -> tuple[list[float], list[float]]:
                live = RedisLiveState(url, prefix="bench" + secrets.token_hex(4))
                try:
                    in_memory = await direct_times(MemoryLiveState(), options.setups)
                    return in_memory, await direct_times(live, options.setups)
                finally:
                    await live.aclose()

            alone_memory, alone_redis = asyncio.run(direct())
            for name, times in (("memory", alone_memory), ("Redis", alone_redis)):
                ms = [t * 1000 for t in times]
                print(
                    f"{name:<8} admit_call + start_stream alone (idle loop): p50 "
                    f"{pct(ms, 50):.3f} ms, p99 {pct(ms, 99):.3f} ms, max {max(ms):.3f} ms"
                )
            own50 = pct(redis[1], 50) - pct(memory[1], 50)
            own99 = pct(redis[1], 99) - pct(memory[1], 99)
            print(
                f"Redis overhead (time awaiting the state, per call): p50 {own50 * 1000:+.2f} ms, "
                f"p99 {own99 * 1000:+.2f} ms (target p99 ≤ 2 ms)\n"
            )
        if not options.skip_load:
            print(f"CPU under load: {options.calls} calls of {options.seconds:g} s")
            print(
                f"{'servers':<12} {'calls':>5} {'call-s':>8} {'ms/call-s':>11} {'srv cpu':>8} "
                f"{'redis s':>8} {'late p99':>9} {'failed':>6}"
            )
            print(cpu_run(1, None, None, options.calls, options.seconds))
            print(cpu_run(2, url, pid, options.calls, options.seconds))


if __name__ == "__main__":
    main()
