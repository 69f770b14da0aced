"""Benchmark of the whole pipeline; results go to benchmarks/results/optimize.json.

    python benchmarks/optimize_bench.py [--model zoo:googlenet-small] [--skip TECH,...] [--warm]

Runs `rebirth optimize MODEL [--skip TECH,...] -o OUTDIR` (the README's main job by default) as a user
would, in its own process, with an empty cache (exports and trained weights made from scratch;
``--warm`` keeps the user's cache), and records the wall time of the whole command and of each of its
four stages (from the stage lines it prints as it goes, timestamped as they arrive), plus what it
reached: the paired speed-up, memory, accuracy and the quantization step. Goals on this 2-core
machine: <= 15 minutes with an empty cache (training the zoo network included), <= 8 once cached.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, write_results

STAGE = "… "


def run(model: str, warm: bool, skip: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="rebirth-optimize-bench-") as folder:
        env = dict(os.environ)
        if not warm:
            env["REBIRTH_CACHE"] = str(Path(folder) / "cache")
        outdir = Path(folder) / "out"
        command = [sys.executable, "-m", "rebirth", "optimize", model, "-o", str(outdir)]
        if skip:
            command += ["--skip", skip]
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        stages = []
        for line in process.stdout:
            print(line, end="", flush=True)
            if line.startswith(STAGE):
                stages.append((round(time.perf_counter() - start, 1), line[len(STAGE):].strip()))
        code = process.wait()
        wall = time.perf_counter() - start
        slim = json.loads((outdir / "slim.json").read_text()) if code == 0 else {}
        before, after, paired = ({} if code else json.loads((outdir / name).read_text())
                                 for name in ("before.json", "after.json", "comparison.json"))
        return {
            "model": model, "exit_code": code, "cold_cache": not warm, "wall_s": round(wall, 1),
            "stages_s": stages,
            "report_bytes": (outdir / "report.html").stat().st_size if code == 0 else None,
            "p50_ms": {side: profile.get("latency_ms", {}).get("p50")
                       for side, profile in (("before", before), ("after", after))},
            "memory": {side: {key: profile.get("memory", {}).get(key) for key in
                              ("peak_rss_bytes", "baseline_rss_bytes", "constant_bytes", "planned_bytes")}
                       for side, profile in (("before", before), ("after", after))},
            "runner": {side: profile.get("device", {}).get("runner_kind")
                       for side, profile in (("before", before), ("after", after))},
            "merges": [(m["kind"], m["layers"]) for m in slim.get("merges", [])],
            "accuracy": slim.get("accuracy"),
            "quantization": slim.get("quantization"),
            "allocation": slim.get("allocation"),
            "paired": {key: paired.get(key) for key in ("outcome", "ratio", "low", "high", "blocks", "reason")},
            "goal": "<= 480 s" if warm else "<= 900 s",
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="zoo:googlenet-small")
    parser.add_argument("--skip", default="", help="techniques to leave out (default: none, as the README runs)")
    parser.add_argument("--warm", action="store_true", help="keep the user's export and weights cache")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/optimize.json")
    args = parser.parse_args()
    result = run(args.model, args.warm, args.skip)
    write_results(args.out, result)
    print(f"{result['wall_s']} s, exit code {result['exit_code']}")
    return 0 if result["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
