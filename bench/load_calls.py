"""The load generator of ``bench/load.py``: simulated calls in one or more worker processes,
and the figures computed from what they and the server recorded (see ``load.py``'s
docstring).

Each worker process (``multiprocessing`` spawn) opens its sockets, reports ready, waits for
the common start time, plays its share of the calls (each call its own task, sending its
frames on its own 20 ms schedule, as Twilio does), and sends back plain per-call records
(:class:`CallLog`) and its own CPU time.
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import os
import random
import resource
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import numpy as np

from voicehost.testing.providers import tone
from voicehost.testing.twilio import FRAME_BYTES, SimulatedCall, TwilioSimulator
from voicehost.wavfile import read_audio_ulaw

FRAME_S = 0.02
CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_ticks(pid: int) -> int:
    """``utime + stime`` of process ``pid`` (all its threads), in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def machine_ticks() -> tuple[int, int]:
    """``(busy, total)`` clock ticks of all cores since boot (``/proc/stat``)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time, already counted in user
    return total - idle, total


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def caller_audio(path: str) -> bytes:
    """The caller's μ-law audio, whole 20 ms frames: a 1 s 440 Hz tone, or the recording(s)
    at ``path`` (a file, or every ``*.wav`` in a folder), each followed by 0.5 s of silence."""
    if not path:
        return tone(1.0)
    p = Path(path)
    files = sorted(p.glob("*.wav")) if p.is_dir() else [p]
    if not files:
        raise SystemExit(f"--audio: no .wav files in {p}")
    audio = b"".join(read_audio_ulaw(f) + b"\xff" * 4000 for f in files)
    return audio.ljust(-(-len(audio) // FRAME_BYTES) * FRAME_BYTES, b"\xff")


def pct(samples: list[float], q: float) -> float:
    """The ``q``-th percentile, NaN for no samples."""
    return float(np.percentile(samples, q)) if samples else float("nan")


@attrs.define
class CallLog:
    """One call as the generator saw it (``time.monotonic()`` seconds).

    Attributes:
        sent: when each caller frame was handed to the socket, by frame index.
        late: how late each was against its 20 ms schedule.
        runs: arrival times of each bot reply's ``media`` frames (a mark or clear ends one).
        marks: marks echoed (replies played to the end).
    """

    call_sid: str = ""
    started: float = 0.0
    ended: float = 0.0
    error: str = ""
    sent: list[float] = attrs.Factory(list)
    late: list[float] = attrs.Factory(list)
    runs: list[list[float]] = attrs.Factory(list)
    marks: int = 0

    def take(self, call: SimulatedCall) -> None:
        """Keep what the simulator recorded, as plain data."""
        self.call_sid = call.call_sid
        self.sent = [t for t, _ in call.sent_frames]
        self.marks = len(call.echoed_marks)
        run: list[float] = []
        for event in call.events:
            kind = event.get("event")
            if kind == "media":
                run.append(event["_t"])
            elif kind in ("mark", "clear") and run:
                self.runs.append(run)
                run = []
        if run:
            self.runs.append(run)


@attrs.define
class LoadResult:
    """The figures of one run (see ``load.py``'s docstring)."""

    calls: list[CallLog]
    wall_s: float
    server_cpu_s: float
    client_cpu_s: float
    busy_pct: float
    cores: int
    lead_frames: int
    inbound_ms: tuple[float, float] = (float("nan"), float("nan"))
    lost: int = 0
    metrics_status: int = 0  # GET /metrics before the run (404: no such page)
    server_warnings: int = 0  # lines the server logged at WARNING or ERROR

    @property
    def ok(self) -> list[CallLog]:
        return [c for c in self.calls if c.call_sid and not c.error]

    @property
    def failed(self) -> int:
        return len(self.calls) - len(self.ok)

    @property
    def call_seconds(self) -> float:
        return sum(c.ended - c.started for c in self.ok)

    @property
    def server_ms_per_call_s(self) -> float:
        return self.server_cpu_s * 1000 / self.call_seconds if self.call_seconds else float("nan")

    @property
    def server_pct(self) -> float:
        return 100 * self.server_cpu_s / self.wall_s

    @property
    def client_pct(self) -> float:
        return 100 * self.client_cpu_s / self.wall_s

    @property
    def other_pct(self) -> float:
        """CPU of everything else on the machine, % of one core."""
        return max(0.0, self.busy_pct * self.cores - self.server_pct - self.client_pct)

    @property
    def late_p99_ms(self) -> float:
        return pct([x for c in self.ok for x in c.late], 99) * 1000

    @property
    def pacing_ms(self) -> tuple[float, float]:
        """p50, p99 of |gap - 20 ms| between a reply's frames after its first lead frames."""
        k = self.lead_frames
        errors = [
            abs(b - a - FRAME_S)
            for c in self.ok
            for run in c.runs
            for a, b in zip(run[k:], run[k + 1 :], strict=False)
        ]
        return pct(errors, 50) * 1000, pct(errors, 99) * 1000

    @property
    def bot_frames(self) -> int:
        return sum(len(run) for c in self.ok for run in c.runs)

    @property
    def underruns(self) -> int:
        """Bot frames that arrived after the simulated Twilio buffer ran dry (1 ms slack)."""
        count = 0
        for run in (run for c in self.ok for run in c.runs):
            play_until = run[0] + FRAME_S
            for t in run[1:]:
                if t > play_until + 0.001:
                    count += 1
                play_until = max(play_until, t) + FRAME_S
        return count

    @property
    def replies_per_call(self) -> float:
        return sum(c.marks for c in self.ok) / len(self.ok) if self.ok else 0.0

    def add_server_report(self, path: Path) -> None:
        """Match the STT's arrival times (the server's report) to the frames sent."""
        sessions: dict[str, Any] = json.loads(path.read_text())["sessions"]
        latencies: list[float] = []
        lost = 0
        for c in self.ok:
            got = sessions.get(c.call_sid, {"idx": [], "t": []})
            seen = set()
            for idx, t in zip(got["idx"], got["t"], strict=True):
                if 0 <= idx < len(c.sent):
                    latencies.append(t - c.sent[idx])
                    seen.add(idx)
            lost += len(c.sent) - len(seen)
        self.inbound_ms = (pct(latencies, 50) * 1000, pct(latencies, 99) * 1000)
        self.lost = lost


# --- one worker process ------------------------------------------------------------------


@attrs.frozen
class Plan:
    """What a worker plays: ``calls`` as ``(start delay s, audio offset bytes)``."""

    base_url: str
    token: str
    seconds: float
    audio: bytes
    calls: list[tuple[float, int]]
    cpus: tuple[int, ...] | None = None  # the cores to run on (None: any)


async def _one_call(
    sim: TwilioSimulator, log: CallLog, at: float, seconds: float, audio: bytes, offset: int
) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, at - loop.time()))
    log.started = time.monotonic()
    call: SimulatedCall | None = None
    try:
        call = await sim.start_call()
        t0 = loop.time()
        size = len(audio)
        for i in range(round(seconds / FRAME_S)):
            due = t0 + i * FRAME_S
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            log.late.append(max(0.0, loop.time() - due))
            start = (offset + i * FRAME_BYTES) % size  # the audio is whole frames
            await call.send_media(i.to_bytes(4, "big") + audio[start + 4 : start + FRAME_BYTES])
        await call.stop()
        if call.close_code is None:
            log.error = "the server did not close the socket after stop"
    except Exception as exc:  # a call that failed is counted, not fatal
        log.error = f"{type(exc).__name__}: {exc}"
    log.ended = time.monotonic()
    if call is not None:
        log.take(call)
        call.events.clear()  # the records are taken; free the memory at once


async def _play(plan: Plan, conn: Connection) -> list[CallLog]:
    logs = [CallLog() for _ in plan.calls]
    connector = aiohttp.TCPConnector(limit=0)  # one socket per call, no pool cap
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        TwilioSimulator(plan.base_url, auth_token=plan.token, session=session) as sim,
    ):
        conn.send("ready")
        go: float = await asyncio.to_thread(conn.recv)  # time.monotonic() to start at
        loop = asyncio.get_running_loop()
        base = loop.time() + (go - time.monotonic())
        await asyncio.gather(
            *(
                _one_call(sim, log, base + delay, plan.seconds, plan.audio, offset)
                for log, (delay, offset) in zip(logs, plan.calls, strict=True)
            )
        )
    return logs


def worker(plan: Plan, conn: Connection) -> None:
    """A worker process: play ``plan``, send ``(logs, cpu seconds while playing)``."""
    if plan.cpus:
        os.sched_setaffinity(0, plan.cpus)
    # No cyclic GC while playing: a full collection over the records kept so far can stall
    # this loop for tens of ms on a small VM, which would count as the server's pacing error
    # and inbound latency. A run is short; its garbage is freed when the process ends.
    gc.disable()
    cpu0 = self_cpu_s()
    logs = asyncio.run(_play(plan, conn))
    conn.send((logs, self_cpu_s() - cpu0))
    conn.close()


def run_calls(
    base_url: str,
    token: str,
    server_pid: int,
    *,
    calls: int,
    seconds: float,
    ramp: float,
    audio: bytes,
    lead_frames: int,
    procs: int = 1,
    cpus: tuple[int, ...] | None = None,
    seed: int = 1,
) -> LoadResult:
    """Play ``calls`` calls against ``base_url`` from ``procs`` worker processes, measuring
    the server process's CPU from the common start to the last call's end."""
    rng = random.Random(seed)
    starts = [
        (rng.uniform(0, ramp) if calls > 1 else 0.0, rng.randrange(0, len(audio), FRAME_BYTES))
        for _ in range(calls)
    ]
    ctx = multiprocessing.get_context("spawn")
    workers = []
    for k in range(procs):
        parent, child = ctx.Pipe()
        plan = Plan(base_url, token, seconds, audio, starts[k::procs], cpus)
        process = ctx.Process(target=worker, args=(plan, child), daemon=True)
        process.start()
        workers.append((process, parent))
    try:
        for _, conn in workers:
            if conn.recv() != "ready":
                raise RuntimeError("a load worker did not start")
        server0, busy0, wall0 = process_ticks(server_pid), machine_ticks(), time.monotonic()
        go = wall0 + 0.1
        for _, conn in workers:
            conn.send(go)
        results = [conn.recv() for _, conn in workers]
        server1, busy1, wall1 = process_ticks(server_pid), machine_ticks(), time.monotonic()
    finally:
        for process, _ in workers:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    total = busy1[1] - busy0[1]
    return LoadResult(
        calls=[log for logs, _ in results for log in logs],
        wall_s=wall1 - wall0,
        server_cpu_s=(server1 - server0) / CLK_TCK,
        client_cpu_s=sum(cpu for _, cpu in results),
        busy_pct=100 * (busy1[0] - busy0[0]) / total if total else float("nan"),
        cores=os.cpu_count() or 1,
        lead_frames=lead_frames,
    )
