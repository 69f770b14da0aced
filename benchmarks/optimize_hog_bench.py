"""Does a busy machine during the before-stage move `rebirth optimize`'s speed-up?

    python benchmarks/optimize_hog_bench.py [--model zoo:googlenet]

Runs `rebirth optimize MODEL` twice as a user would, in its own process, with one cache (the first run
exports; both slim from the same seed): once on a quiet machine, once with a busy loop on the same cores
from the start until the slimming stage begins (so the profile the merges are ranked by is taken under
load). The speed-up each reports is the paired one of its last stage. Goal: within 5% of each other.
Run it alone.
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

SLIM_STAGE = "2/4"


def optimize(model: str, outdir: Path, cache: Path, hog_before: bool) -> dict:
    env = dict(os.environ, REBIRTH_CACHE=str(cache))
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if hog_before else None
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "rebirth", "optimize", model, "-o", str(outdir)], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    hog_s = None
    assert process.stdout is not None
    for line in process.stdout:
        print(line, end="", flush=True)
        if hog is not None and SLIM_STAGE in line:
            hog.kill()
            hog.wait()
            hog, hog_s = None, round(time.perf_counter() - start, 1)
    code = process.wait()
    if hog is not None:
        hog.kill()
    if code != 0:
        raise RuntimeError(f"rebirth optimize exited {code}")
    paired = json.loads((outdir / "comparison.json").read_text())
    plan = json.loads((outdir / "plan.json").read_text())
    slim = json.loads((outdir / "slim.json").read_text())
    return {"hog_before": hog_before, "hog_stopped_at_s": hog_s, "wall_s": round(time.perf_counter() - start, 1),
            "speedup": round(1 / paired["ratio"], 4), "speedup_ci95": [round(1 / paired["high"], 4),
                                                                      round(1 / paired["low"], 4)],
            "outcome": paired["outcome"], "blocks": paired["blocks"], "in_process": paired["in_process"],
            "plan_p50_ms": plan["latency_ms"]["p50"], "plan_noise": plan["noise"],
            "merges": [(merge["kind"], merge["layers"]) for merge in slim["merges"]]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="zoo:googlenet")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/optimize_hog.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rebirth-optimize-hog-") as folder:
        cache = Path(folder) / "cache"
        quiet = optimize(args.model, Path(folder) / "quiet", cache, hog_before=False)
        busy = optimize(args.model, Path(folder) / "busy", cache, hog_before=True)
    ratio = busy["speedup"] / quiet["speedup"]
    write_results(args.out, {"model": args.model, "quiet": quiet, "hog_during_before": busy,
                             "speedup_ratio_hog_over_quiet": round(ratio, 4), "goal": "within 5%",
                             "same_merges": quiet["merges"] == busy["merges"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
