"""Benchmark of the history's change points (``rebirth.results.changes``) on synthetic series of run summaries,
the way issue 25 plants them: 100 runs (commits) of a p50 with 1.5% run-to-run noise (log-normal), flat; with a
5% step at a random run in 20-80; or with a slow drift of 1% every 10 runs from a random run in 0-50.

    python benchmarks/changes_bench.py [--series 1000] [--out PATH]

Goals (issue 25): planted steps found >= 95% (a step found within 2 runs of where it was planted); the drift
found; false change points on flat series <= 1 per 100 series. Results go to benchmarks/results/changes.json.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Optional

from common import ROOT, write_results

RUNS, NOISE, STEP, DRIFT = 100, 0.015, 0.05, 0.01


def series(rng: random.Random, step_at: Optional[int] = None, drift_from: Optional[int] = None) -> list[float]:
    """p50s in ms of ``RUNS`` runs: 2 ms with ``NOISE``, a ``STEP`` from ``step_at``, ``DRIFT`` per 10 runs from
    ``drift_from``."""
    values = []
    for index in range(RUNS):
        level = 0.0
        if step_at is not None and index >= step_at:
            level += math.log(1 + STEP)
        if drift_from is not None and index >= drift_from:
            level += math.log(1 + DRIFT) * (index - drift_from) / 10
        values.append(2.0 * math.exp(level + rng.gauss(0, NOISE)))
    return values


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000, help="series of each kind (default: 1000)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "changes.json")
    args = parser.parse_args(argv)
    from rebirth.contract.history import DRIFT as DRIFTS
    from rebirth.contract.history import STEP as STEPS
    from rebirth.results.changes import DRIFT_Z, MIN_SEGMENT, PENALTY, STEP_Z, find_changes

    rng = random.Random(25)
    seconds: list[float] = []

    def found(values: list[float]):
        start = time.perf_counter()
        changes = find_changes(values)
        seconds.append(time.perf_counter() - start)
        return changes

    flat = [found(series(rng)) for _ in range(args.series)]
    false = sum(1 for changes in flat if changes)
    steps_found, step_errors, step_sizes, spurious = 0, [], [], 0
    for _ in range(args.series):
        at = rng.randint(20, 80)
        changes = found(series(rng, step_at=at))
        near = [change for change in changes if change.kind == STEPS and abs(change.start - at) <= 2]
        steps_found += bool(near)
        if near:
            step_errors.append(abs(near[0].start - at))
            step_sizes.append(near[0].size)
        spurious += sum(1 for change in changes if change not in near)
    drifts_found, drift_sizes = 0, []
    for _ in range(args.series):
        start = rng.randint(0, 50)
        changes = found(series(rng, drift_from=start))
        drifting = [change for change in changes if change.kind == DRIFTS]
        drifts_found += bool(drifting)
        if drifting:
            drift_sizes.append(max(drifting, key=lambda change: change.end - change.start).size)
    count = args.series
    results = {
        "series": count, "runs": RUNS, "noise": NOISE, "step": STEP, "drift_per_10_runs": DRIFT,
        "method": {"penalty": PENALTY, "step_z": STEP_Z, "drift_z": DRIFT_Z, "min_segment": MIN_SEGMENT},
        "flat_with_a_change": false, "false_per_100_series": 100 * false / count,
        "steps_found": steps_found, "steps_found_share": steps_found / count,
        "step_position_error_median": statistics.median(step_errors) if step_errors else None,
        "step_size_median": statistics.median(step_sizes) if step_sizes else None,
        "other_changes_in_step_series": spurious,
        "drifts_found": drifts_found, "drifts_found_share": drifts_found / count,
        "drift_size_median": statistics.median(drift_sizes) if drift_sizes else None,
        "ms_per_series_median": 1000 * statistics.median(seconds),
        "goals": {"steps_found_share": 0.95, "false_per_100_series": 1.0},
    }
    write_results(args.out, results)
    print(f"flat series with a change: {false}/{count}; steps found {steps_found}/{count}; drifts found "
          f"{drifts_found}/{count}; {results['ms_per_series_median']:.1f} ms a series", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
