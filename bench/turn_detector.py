"""Smart Turn v3.2 (``voicehost-smart-turn``): load time, inference time on one thread, and
its decisions on the real recordings of ``tests/data/human`` cut at complete and incomplete
points (``tests/turn/turn_cuts.py``). Prints numbers; asserts nothing.

Run: ``uv run python bench/turn_detector.py [--runs 200] [--tail-ms 200 500] [--json]``.

* **load**: ``load_model`` of the bundled file in this fresh process (ONNX Runtime import
  excluded, measured apart), ms.
* **inference**: one ``SmartTurnModel.probability`` call, the way a ``decide`` runs it in its
  worker thread (PCM16 → features → ONNX on one intra-op thread), p50/p95 over ``--runs``
  calls cycling through the cuts, ms, as wall time and as the thread's CPU time (which other
  load on the machine does not inflate); the feature extraction alone too.
* **decisions**: the probability of every cut at each endpointing silence ``--tail-ms``, the
  expected answer and whether the default threshold 0.5 gets it right.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "turn"))

from turn_cuts import CUTS, complete_expected, cut_audio  # noqa: E402

from voicehost_smart_turn.features import log_mel_features, pcm16_to_float, window_last  # noqa: E402
from voicehost_smart_turn.weights import bundled_model_path  # noqa: E402

THRESHOLD = 0.5


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="inference runs (default 200)")
    parser.add_argument("--tail-ms", type=int, nargs="+", default=[200, 500])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()

    started = time.perf_counter()
    import onnxruntime  # noqa: F401

    ort_import_ms = (time.perf_counter() - started) * 1000
    from voicehost_smart_turn.model import load_model

    model = load_model(bundled_model_path())
    clips = [cut_audio(cut) for cut in CUTS]
    model.probability(clips[0])  # warm-up
    infer_ms: list[float] = []
    cpu_ms: list[float] = []
    feature_ms: list[float] = []
    for i in range(args.runs):
        audio = clips[i % len(clips)]
        t0 = time.perf_counter()
        log_mel_features(window_last(pcm16_to_float(audio)))
        t1, c1 = time.perf_counter(), time.thread_time()
        model.probability(audio)
        t2, c2 = time.perf_counter(), time.thread_time()
        feature_ms.append((t1 - t0) * 1000)
        infer_ms.append((t2 - t1) * 1000)
        cpu_ms.append((c2 - c1) * 1000)

    decisions = []
    for cut in CUTS:
        row = {
            "file": cut.file,
            "kind": cut.kind,
            "text": cut.text,
            "start_s": cut.start_s,
            "end_s": cut.end_s,
            "expected": "complete" if complete_expected(cut) else "incomplete",
        }
        for tail in args.tail_ms:
            row[f"p_{tail}ms"] = round(model.probability(cut_audio(cut, tail)), 3)
        decisions.append(row)

    summary = {}
    for tail in args.tail_ms:
        right = {}
        for kind in ("sentence", "monologue", "monologue-end", "mid-sentence"):
            rows = [r for r in decisions if r["kind"] == kind]
            ok = [(r[f"p_{tail}ms"] >= THRESHOLD) == (r["expected"] == "complete") for r in rows]
            right[kind] = f"{sum(ok)}/{len(ok)}"
        summary[f"{tail}ms"] = right
    result = {
        "onnxruntime_import_ms": round(ort_import_ms, 1),
        "model_load_ms": round(model.load_ms, 1),
        "inference_ms": {
            "runs": args.runs,
            "p50": round(statistics.median(infer_ms), 1),
            "p95": round(_pct(infer_ms, 0.95), 1),
            "cpu_p50": round(statistics.median(cpu_ms), 1),
            "cpu_p95": round(_pct(cpu_ms, 0.95), 1),
            "features_p50": round(statistics.median(feature_ms), 1),
        },
        "right_at_threshold_0.5": summary,
        "decisions": decisions,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    inf = result["inference_ms"]
    print(f"onnxruntime import {ort_import_ms:.0f} ms, model load {model.load_ms:.0f} ms")
    print(
        f"inference on one thread ({args.runs} runs): p50 {inf['p50']} ms, p95 {inf['p95']} ms "
        f"wall; CPU time of the thread p50 {inf['cpu_p50']} ms, p95 {inf['cpu_p95']} ms "
        f"(features alone p50 {inf['features_p50']} ms)"
    )
    tails = "  ".join(f"p@{t}ms" for t in args.tail_ms)
    print(f"\n{'file':22} {'kind':14} {'expected':10} {tails}  text")
    for r in decisions:
        probs = "  ".join(f"{r[f'p_{t}ms']:>{len(f'p@{t}ms')}.2f}" for t in args.tail_ms)
        print(f"{r['file']:22} {r['kind']:14} {r['expected']:10} {probs}  {r['text']}")
    print("\nright at threshold 0.5:")
    for tail, right in summary.items():
        print(f"  tail {tail}: " + ", ".join(f"{k} {v}" for k, v in right.items()))


if __name__ == "__main__":
    main()
