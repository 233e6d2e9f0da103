"""Load benchmark: N simultaneous simulated phone calls against a real ``voicehost serve``
process, measuring what the server costs and how it keeps time (no assertions).

Run::

    uv run python bench/load.py [--calls 1,50,200] [--seconds 20] [--metrics off,on]
        [--procs K] [--pin] [--audio examples/calls] [--final-every 5] [--ramp 1]
        [--toml '...'] [--keep]

``--calls`` and ``--metrics`` take comma-separated lists; each combination is one run with
a fresh server, one table row. Default: 50 calls of 20 s, ``[observability]`` left out.

Each run starts ``voicehost serve --port 0`` (the installed console script, so the server is
exactly what a user runs; ``--voicehost`` picks another) in a temporary directory, with
``bench/load_plugin.py`` installed as a real entry-point plugin through a ``*.dist-info`` on
``PYTHONPATH``. Its ``plugins.toml``: STT ``bench-count`` (a counting pass-through: Twilio's
μ-law frames reach it unconverted and it only timestamps them), TTS ``fake`` (a tone, 20 ms
of audio per character), the ``scripted`` responder (a 2 s greeting, a 1.5 s fallback reply
to every final), call records on (SQLite in the temporary directory), a Twilio auth token
(signatures checked), and the socket limits raised to admit N calls from one address
(Twilio's many addresses are all 127.0.0.1 here). ``--metrics on|off`` adds
``[observability] metrics = true|false``; ``--toml`` appends more TOML (only tables the file
does not have yet, e.g. ``[observability]`` without ``--metrics``). ``--keep`` keeps the
directory (its ``server.log``).

The load generator runs in ``--procs`` worker processes (default one per 100 calls; see
``bench/load_calls.py``); ``--pin`` puts the server on the first core and the generator on
the others (``sched_setaffinity``), so neither takes the other's core.

Each call, its start spread at random over ``--ramp`` seconds: signed voice webhook → TwiML →
Media Streams socket → ``connected``/``start`` → caller audio on its own real-time 20 ms
schedule for ``--seconds`` (a 440 Hz tone, or the recordings given with ``--audio``, looped;
the first 4 bytes of each 160-byte frame carry its index) → ``stop``. The STT fires speech
start and, 1 s later, a final transcript every ``--final-every`` seconds of caller audio, so
the bot says its greeting at the start and a reply now and then, paced by the server; the
simulator models Twilio's playback buffer and echoes each reply's mark when it has played.

Columns:

* **/metrics**: HTTP status of ``GET /metrics`` before the run (404: the server has none);
* **srv ms/call-s**: the server process's CPU time (``utime + stime`` in
  ``/proc/<pid>/stat``, all threads) from the common start to the last call's end, divided
  by the calls' summed durations (webhook → socket closed); **srv %**, **gen %**: the
  server's and the generator processes' CPU over the run, % of one core; **other %**:
  everything else on the machine (``/proc/stat``), % of one core, nonzero when something
  else competed for the cores;
* **in p50 / p99**: inbound frame latency, ms, from the simulator handing a caller ``media``
  message to its socket (``time.monotonic()``) to the STT session's ``send_audio`` (the
  server's plugin reports its timestamps at exit; ``CLOCK_MONOTONIC`` is one clock for all
  processes of the machine);
* **out p50 / p99**: outbound pacing error, ms: |gap − 20 ms| between consecutive bot
  ``media`` frames of one reply as the simulator receives them (the first
  ``playback_lead_ms`` / 20 frames of each reply are sent at once by design and left out; the
  generator's own event-loop lag is in it too); **underruns**: bot frames that arrived after
  the simulated Twilio buffer had run dry (a gap the caller hears) / all bot frames;
* **late p99**: how late the generator sent caller frames against their schedule, ms. Tens of
  ms or more mean the machine did not keep real time (generator and server share the cores)
  and the latencies include that backlog; **lost**: caller frames the STT never got;
  **replies/call**: bot replies (greeting included) whose mark came back; **failed**: calls
  that could not be placed or did not end cleanly; **warnings**: lines the server logged at
  WARNING or ERROR (``--keep`` to read them).

Every call waking the server 50+ times a second is costly on a small VM, so CPU per
call-second falls as calls share event-loop wake-ups: compare runs with equal ``--calls``.
Run on an otherwise idle machine (watch **other %**) for figures worth quoting.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load_calls import LoadResult, caller_audio, run_calls

from voicehost.server import ServerSettings

BENCH_DIR = Path(__file__).resolve().parent
TOKEN = "bench-load-auth-token"
GREETING_CHARS = 100  # x 20 ms per character = 2 s of tone
REPLY_CHARS = 75  # 1.5 s

SHIM = """\
import importlib.util

_spec = importlib.util.spec_from_file_location("voicehost_bench_load_plugin", {path!r})
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
plugin = _module.plugin
"""


def _text(chars: int, word: str) -> str:
    return ((word + " ") * chars)[:chars]


def write_server_dir(root: Path, calls: int, metrics: str | None, extra: str, every: float) -> Path:
    """The plugin shim, its dist-info and ``plugins.toml`` under ``root``; returns the
    ``plugins.toml`` path."""
    site = root / "site"
    site.mkdir()
    (site / "voicehost_bench_load.py").write_text(
        SHIM.format(path=str(BENCH_DIR / "load_plugin.py"))
    )
    info = site / "voicehost_bench_load-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: voicehost-bench-load\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text("[voicehost]\nbench = voicehost_bench_load:plugin\n")
    observability = (
        f"[observability]\nmetrics = {'true' if metrics == 'on' else 'false'}\n" if metrics else ""
    )
    config = root / "plugins.toml"
    config.write_text(
        textwrap.dedent(
            f"""\
            [plugins]
            enabled = ["voicehost-bench-load"]

            [server]
            max_connections = {calls + 16}
            max_pending_connections = {max(32, calls)}
            max_pending_connections_per_ip = {max(4, calls)}

            [twilio]
            auth_token = "{TOKEN}"

            [stt]
            provider = "bench-count"
            [stt.bench-count]
            final_every_s = {every}

            [tts]
            provider = "fake"
            [tts.fake]
            ms_per_char = 20

            [responder]
            provider = "scripted"
            [responder.scripted]
            greeting = "{_text(GREETING_CHARS, "hello")}"
            fallback = "{_text(REPLY_CHARS, "sure")}"
            rules = []

            [records]
            path = "{root / "calls.db"}"
            """
        )
        + observability
        + (extra + "\n" if extra else "")
    )
    return config


class Server:
    """A ``voicehost serve --port 0`` child process with the bench plugin."""

    def __init__(
        self, root: Path, config: Path, voicehost: str, cpus: set[int] | None = None
    ) -> None:
        self.log = root / "server.log"
        self.report = root / "report.json"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("VOICEHOST_", "TWILIO_")) and k != "PYTHONPATH"
        }
        env["PYTHONPATH"] = str(root / "site")
        env["VOICEHOST_BENCH_REPORT"] = str(self.report)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [voicehost, "serve", "--port", "0", "--config", str(config)],
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if cpus:  # before it starts any thread; later threads inherit it
            os.sched_setaffinity(self.proc.pid, cpus)
        self.base_url = self._wait_listening()

    def metrics_status(self) -> int:
        """The HTTP status of ``GET /metrics`` (404 when the server has no such page)."""
        try:
            with urllib.request.urlopen(self.base_url + "/metrics", timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def _wait_listening(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(r"listening on (http://\S+)", self.log.read_text(errors="replace"))
            if match:
                return match.group(1)
            if self.proc.poll() is not None:
                raise RuntimeError(f"voicehost serve exited {self.proc.returncode}:\n{self.tail()}")
            time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError(f"voicehost serve did not start in {timeout:g} s:\n{self.tail()}")

    def warnings(self) -> int:
        """Lines the server logged at WARNING or ERROR."""
        text = self.log.read_text(errors="replace")
        return sum(1 for line in text.splitlines() if " WARNING " in line or " ERROR " in line)

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM (the server drains and exits; the plugin writes its report)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_one(options: argparse.Namespace, calls: int, metrics: str | None) -> LoadResult:
    with contextlib.ExitStack() as stack:
        if options.keep:
            root = Path(tempfile.mkdtemp(prefix="voicehost-load-"))
            print(f"  (server directory kept: {root})", file=sys.stderr)
        else:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="voicehost-load-")))
        config = write_server_dir(root, calls, metrics, options.toml, options.final_every)
        all_cpus = os.sched_getaffinity(0)
        pinned = options.pin and len(all_cpus) > 1
        server_cpus = {min(all_cpus)} if pinned else None
        server = Server(root, config, options.voicehost, server_cpus)
        try:
            status = server.metrics_status()
            time.sleep(0.5)  # let start-up settle before measuring
            result = run_calls(
                server.base_url,
                TOKEN,
                server.proc.pid,
                calls=calls,
                seconds=options.seconds,
                ramp=options.ramp,
                audio=caller_audio(options.audio),
                lead_frames=ServerSettings().playback_lead_ms // 20,
                procs=procs(options.procs, calls),
                cpus=tuple(sorted(all_cpus - {min(all_cpus)})) if pinned else None,
            )
        finally:
            server.stop()
        if not server.report.exists():
            raise RuntimeError(f"the server wrote no report:\n{server.tail()}")
        result.add_server_report(server.report)
        result.metrics_status = status
        result.server_warnings = server.warnings()
        return result


COLUMNS = (
    ("calls", 5),
    ("metrics", 7),
    ("/metrics", 8),
    ("srv ms/call-s", 13),
    ("srv %", 6),
    ("gen %", 6),
    ("other %", 7),
    ("in p50", 7),
    ("in p99", 7),
    ("out p50", 7),
    ("out p99", 7),
    ("underruns", 13),
    ("late p99", 8),
    ("lost", 5),
    ("replies/call", 12),
    ("failed", 6),
    ("warnings", 8),
)
HEADER = " ".join(f"{name:>{width}}" for name, width in COLUMNS)


def row(calls: int, metrics: str | None, r: LoadResult) -> str:
    values = (
        calls,
        metrics or "-",
        r.metrics_status,
        f"{r.server_ms_per_call_s:.3f}",
        f"{r.server_pct:.1f}",
        f"{r.client_pct:.1f}",
        f"{r.other_pct:.1f}",
        f"{r.inbound_ms[0]:.2f}",
        f"{r.inbound_ms[1]:.2f}",
        f"{r.pacing_ms[0]:.2f}",
        f"{r.pacing_ms[1]:.2f}",
        f"{r.underruns}/{r.bot_frames}",
        f"{r.late_p99_ms:.1f}",
        r.lost,
        f"{r.replies_per_call:.1f}",
        r.failed,
        r.server_warnings,
    )
    return " ".join(f"{v!s:>{width}}" for v, (_, width) in zip(values, COLUMNS, strict=True))


def procs(option: int, calls: int) -> int:
    """Load worker processes: ``option``, or (0) one per 100 calls."""
    return option or max(1, -(-calls // 100))


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="50", help="simultaneous calls; a list runs each")
    parser.add_argument("--seconds", type=float, default=20.0, help="caller audio per call, s")
    parser.add_argument(
        "--metrics", default="", help="on, off or a list (off,on): [observability] metrics"
    )
    parser.add_argument("--audio", default="", help="a recording or a folder of them")
    parser.add_argument("--ramp", type=float, default=1.0, help="call starts spread over s")
    parser.add_argument("--final-every", type=float, default=5.0, help="a reply every s")
    parser.add_argument(
        "--procs", type=int, default=0, help="load generator processes (0: one per 100 calls)"
    )
    parser.add_argument("--toml", default="", help="TOML appended to plugins.toml")
    parser.add_argument(
        "--voicehost",
        default=str(Path(sys.executable).with_name("voicehost")),
        help="the voicehost executable to serve with",
    )
    parser.add_argument(
        "--pin", action="store_true", help="server on the first core, the generator on the rest"
    )
    parser.add_argument("--keep", action="store_true", help="keep the server's directory")
    return parser


def main() -> None:
    parser = build_parser()
    options = parser.parse_args()
    counts = [int(n) for n in _list(options.calls)]
    settings: list[str | None] = list(_list(options.metrics)) or [None]
    for m in settings:
        if m not in (None, "on", "off"):
            parser.error(f"--metrics takes on, off or a list of them, not {m!r}")
    print(
        f"voicehost serve under load: {options.seconds:g} s of caller audio per call, "
        f"{os.cpu_count()} cores; latencies in ms"
    )
    print(HEADER, flush=True)
    for calls in counts:
        for metrics in settings:
            try:
                result = run_one(options, calls, metrics)
            except RuntimeError as exc:  # the server did not start or report: say why
                raise SystemExit(f"bench/load.py: {exc}") from None
            print(row(calls, metrics, result), flush=True)
            errors = collections.Counter(c.error for c in result.calls if c.error)
            for error, count in errors.most_common(3):
                print(f"      {count} failed: {error[:120]}", flush=True)


if __name__ == "__main__":
    main()
