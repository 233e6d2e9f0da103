"""``bench/load.py`` end to end with one short call: a real ``voicehost serve`` process with
the bench plugin, one load worker, the server's report matched to the frames sent. Only
behaviour is checked (every frame arrived, the bot spoke), never a time."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load_bench():
    spec = importlib.util.spec_from_file_location("voicehost_bench_load_main", BENCH / "load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # puts bench/ on sys.path for its sibling load_calls
    return module


def test_one_call_reaches_the_stt_and_hears_the_greeting():
    load = _load_bench()
    options = load.build_parser().parse_args(["--calls", "1", "--seconds", "3"])
    try:
        result = load.run_one(options, 1, None)
    finally:
        sys.path.remove(str(BENCH))
    assert result.failed == 0
    (call,) = result.ok
    assert len(call.sent) == 150  # 3 s of 20 ms frames
    assert result.lost == 0  # the STT got every frame, matched by the index in its bytes
    assert all(math.isfinite(x) for x in result.inbound_ms)
    assert result.bot_frames >= 100  # the 2 s greeting
    assert call.marks >= 1  # and its mark came back once played
    assert load.row(1, None, result).split()[0] == "1"
