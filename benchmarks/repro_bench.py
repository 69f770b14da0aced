"""Benchmark of reproducibility: the same `rebirth optimize` command N times; results go to
benchmarks/results/repro.json, one entry per network (a new run of a network replaces its entry).

    python benchmarks/repro_bench.py [--model zoo:googlenet] [--runs 5] [--max-accuracy-drop POINTS] [--out PATH]

Runs `rebirth optimize MODEL -o OUTDIR` (every technique, as the README's main job; the budget only where given)
``--runs`` times in a row, each in its own process, with the user's cache (trained weights and exports made once,
before the first run, by a run that is not counted), and records of each run: its wall time, the steps it kept
(kind, layers and offers), how int8 was made, the decisions' evidence, the paired speed-up with its interval,
the runners' peak RSS before and after, and the top-1 before and as the runtime ran the slimmed program.

Goals (issue 23): the same kept steps in >= 4 of 5 runs; every speed-up within 10% of the median; for full-size
GoogLeNet a median >= 8x, peak RSS >= 3x smaller and each whole command <= 300 s. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from common import ROOT, commit, write_results


def optimize(model: str, budget: Optional[float], outdir: Path) -> tuple[int, float, str]:
    """Run the command; its exit code, wall time and output."""
    command = [sys.executable, "-m", "rebirth", "optimize", model, "-o", str(outdir)]
    if budget is not None:
        command += ["--max-accuracy-drop", str(budget)]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    return done.returncode, time.perf_counter() - start, done.stdout


def steps(slim: dict[str, Any]) -> list[str]:
    """The kept steps of a slim.json, each as one line: kind, layers, detail (a compression: its offers)."""
    kept = []
    for merge in slim.get("merges", []):
        offers = "; ".join(f"{','.join(part['layers'])} {part['detail']}" for part in merge.get("parts", []))
        kept.append(f"{merge['kind']} {','.join(merge['layers'])} {offers or merge.get('detail', '')}".strip())
    quantized = slim.get("quantization") or {}
    if quantized.get("applied"):
        kept.append(f"int8 ({quantized.get('method')})")
    return kept


def evidence(slim: dict[str, Any]) -> list[dict[str, Any]]:
    """Every learned decision's evidence, kept or refused, in order."""
    found = []
    for merge in slim.get("merges", []):
        if merge.get("evidence"):
            found.append({"step": merge["kind"], "kept": True, **merge["evidence"]})
    for skip in slim.get("skipped", []):
        if skip.get("evidence"):
            found.append({"step": skip["kind"], "kept": False, "code": skip.get("code"), **skip["evidence"]})
    quantized = slim.get("quantization") or {}
    if quantized.get("evidence"):
        found.append({"step": "int8", "kept": bool(quantized.get("applied")), "code": quantized.get("code"),
                      **quantized["evidence"]})
    return found


def one_run(model: str, budget: Optional[float]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rebirth-repro-bench-") as folder:
        outdir = Path(folder) / "out"
        code, wall, output = optimize(model, budget, outdir)
        print(output, flush=True)
        if code != 0:
            return {"exit_code": code, "wall_s": round(wall, 1), "output_tail": output.splitlines()[-5:]}
        slim, before, after, paired = (json.loads((outdir / name).read_text()) for name in
                                       ("slim.json", "before.json", "after.json", "comparison.json"))
        accuracy = slim.get("accuracy") or {}
        quantized = slim.get("quantization") or {}
        rss = [profile.get("memory", {}).get("peak_rss_bytes") for profile in (before, after)]
        return {
            "exit_code": 0, "wall_s": round(wall, 1), "steps": steps(slim), "evidence": evidence(slim),
            "int8": {key: quantized.get(key) for key in ("applied", "method", "code", "reason", "runtime_quality")},
            "allocation_rule": (slim.get("allocation") or {}).get("rule"),
            "speedup": 1 / paired["ratio"] if paired.get("ratio") else None,
            "speedup_interval": [1 / paired["high"], 1 / paired["low"]] if paired.get("low") else None,
            "outcome": paired.get("outcome"), "blocks": paired.get("blocks"),
            "peak_rss_bytes": rss, "rss_smaller": rss[0] / rss[1] if all(rss) else None,
            "top1_before": (accuracy.get("before") or {}).get("top1"),
            "top1_after_torch": (accuracy.get("after") or {}).get("top1"),
            "top1_after_runtime": quantized.get("runtime_quality") if quantized.get("applied") else None,
            "samples": (accuracy.get("before") or {}).get("samples"),
        }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """What the runs agree on: the most common kept steps and how many runs kept them, the median speed-up and
    the largest departure from it, the median wall time."""
    done = [run for run in runs if run["exit_code"] == 0]
    if not done:
        return {"runs_done": 0}
    signatures = Counter(tuple(run["steps"]) for run in done)
    common, count = signatures.most_common(1)[0]
    speedups = [run["speedup"] for run in done if run["speedup"]]
    median = statistics.median(speedups) if speedups else None
    rss = [run["rss_smaller"] for run in done if run["rss_smaller"]]
    return {
        "runs_done": len(done), "same_steps_runs": count, "distinct_step_sets": len(signatures),
        "common_steps": list(common), "speedup_median": median,
        "speedup_max_departure": max(abs(s / median - 1) for s in speedups) if median else None,
        "rss_smaller_median": statistics.median(rss) if rss else None,
        "wall_s_median": statistics.median(run["wall_s"] for run in done),
        "wall_s_max": max(run["wall_s"] for run in done),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="zoo:googlenet")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-accuracy-drop", type=float, default=None, dest="budget",
                        help="the budget (default: the command's own, 0.5)")
    parser.add_argument("--no-warm-up", action="store_true",
                        help="the cache holds the trained weights and exports already: no uncounted first run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/repro.json")
    args = parser.parse_args()
    wall = None
    if not args.no_warm_up:
        with tempfile.TemporaryDirectory(prefix="rebirth-repro-warm-") as folder:  # weights and exports, uncounted
            code, wall, output = optimize(args.model, args.budget, Path(folder) / "out")
            print(output, flush=True)
            if code != 0:
                print(f"the warm-up run failed (exit {code})", file=sys.stderr)
                return 1
    runs = []
    for index in range(args.runs):
        print(f"--- run {index + 1} of {args.runs}", flush=True)
        runs.append(one_run(args.model, args.budget))
    existing = json.loads(args.out.read_text()).get("networks", []) if args.out.is_file() else []
    key = (args.model, args.budget)
    entry = {"model": args.model, "budget": args.budget if args.budget is not None else 0.5,
             "budget_given": args.budget is not None, "measured_with": commit(),
             "date": time.strftime("%Y-%m-%d", time.gmtime()),
             "warm_up_s": round(wall, 1) if wall is not None else None,
             "summary": summary(runs), "runs": runs}
    kept = [network for network in existing
            if (network["model"], network["budget"] if network["budget_given"] else None) != key]
    write_results(args.out, {"networks": kept + [entry]})
    print(json.dumps(entry["summary"], indent=1))
    return 0 if all(run["exit_code"] == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
