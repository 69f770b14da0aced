"""Benchmark of the HTML report; results go to benchmarks/results/report.json.

    python benchmarks/report_bench.py [--runs N]

Generation time of the before/after report of two synthetic profiles of 500 ops each (with
slim.json), write included, median over several runs in one process (goal: <= 2 s), the time of
the comparison model alone, and the size of the file with and without the embedded plotly.js.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from common import ROOT, write_results

from rebirth.reports.compare import compare
from rebirth.reports.html import write_html
from tests.synthetic import layer_names, slim_record, synthetic_profile

OPS = 500
SAMPLES = 200


def timed(function, runs: int) -> list[float]:
    """Wall times in seconds of ``runs`` calls of ``function``."""
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        walls.append(time.perf_counter() - start)
    return walls


def report(runs: int) -> dict:
    before = synthetic_profile(OPS, seed=0, samples=SAMPLES)
    after = synthetic_profile(OPS, seed=1, speedup=1.25, samples=SAMPLES, source="slim.pte")
    lrns = [name for name in layer_names(OPS // 5) if ".lrn" in name]
    slim = slim_record(lrns, relearned=[])
    from plotly.offline import get_plotlyjs

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "report.html"
        walls = timed(lambda: write_html(path, before, after, slim), runs)
        size = path.stat().st_size
    model = timed(lambda: compare(before, after, slim), runs)
    plotly_bytes = len(get_plotlyjs().encode())
    return {"ops": [len(before.ops), len(after.ops)], "latency_samples": SAMPLES, "runs": runs,
            "median_s": statistics.median(walls), "max_s": max(walls), "all_s": walls,
            "compare_median_s": statistics.median(model), "file_bytes": size, "file_mb": round(size / 1e6, 2),
            "plotly_js_bytes": plotly_bytes, "report_bytes_without_plotly_js": size - plotly_bytes,
            "goal": "<= 2 s"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "report.json")
    args = parser.parse_args()
    results = {"date": time.strftime("%Y-%m-%d"), "report": report(args.runs)}
    write_results(args.out, results)
    print(json.dumps(results["report"], indent=1))


if __name__ == "__main__":
    main()
