"""Wall time of the ``voicehost`` CLI commands a user types most, printed as numbers.

Run: ``uv run python bench/cli.py [--runs N] [--voicehost PATH]``. Each command runs N times
(default 7) as a fresh process, in a temporary directory holding an empty call-record
database and no ``plugins.toml`` (the embedded offline default), with Python's bytecode cache
on and warmed (``PYTHONDONTWRITEBYTECODE`` is dropped, as on a user's machine); the table
gives the median and the fastest run in seconds. Targets on the 2-core machine (issue 9):
``--help`` and ``calls list`` ≤ 0.5 s, ``list-plugins`` ≤ 0.8 s. ``--voicehost`` times
another installation (an older checkout's ``.venv/bin/voicehost``) for a before/after
comparison.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS: list[list[str]] = [
    ["--help"],
    ["calls", "list"],
    ["calls", "show", "CA00000000000000000000000000000000"],
    ["list-plugins"],
    ["config", "check"],
]


def _time(executable: str, args: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [executable, *args], cwd=cwd, env=env, capture_output=True, check=False, timeout=120
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--voicehost",
        default=str(Path(sys.executable).with_name("voicehost")),
        help="the voicehost executable to time",
    )
    options = parser.parse_args()
    # As on a user's machine: Python caches bytecode (a warm-up run writes it), so the
    # figures are import and start-up cost, not compiling every module on each run.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("VOICEHOST_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        # An empty records database, so `calls list/show` read one (as after `serve`).
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sqlite3; c = sqlite3.connect('voicehost.db'); c.executescript("
                "'CREATE TABLE calls (call_sid TEXT PRIMARY KEY, stream_sid TEXT, from_number "
                "TEXT, to_number TEXT, started_at TEXT, ended_at TEXT, end_reason TEXT);"
                "CREATE TABLE turns (call_sid TEXT, seq INTEGER, role TEXT, kind TEXT, "
                "text TEXT, at_ms INTEGER)')",
            ],
            cwd=cwd,
            check=True,
        )
        for args in COMMANDS:  # warm the OS file cache and write the bytecode caches
            _time(options.voicehost, args, cwd, env)
        print(f"voicehost CLI wall time, {options.runs} runs each ({options.voicehost})")
        print(f"{'command':<44} {'median s':>9} {'min s':>7}")
        for args in COMMANDS:
            times = [_time(options.voicehost, args, cwd, env) for _ in range(options.runs)]
            label = "voicehost " + " ".join(args)
            print(f"{label:<44} {statistics.median(times):>9.3f} {min(times):>7.3f}")


if __name__ == "__main__":
    main()
