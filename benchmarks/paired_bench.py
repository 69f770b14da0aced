"""Regression checks measured side by side: do they catch a real slowdown and stay quiet on an unchanged
build, on a quiet machine and with a CPU hog that starts part-way through each check?

    python benchmarks/paired_bench.py [--trials 200] [--farm-trials 100]

1. one device (``local``): a small network (``paired_models.py:base``) against itself (unchanged) and
   against the same network with one more convolution (``slower``: a regression of known cost, its true
   slowdown measured first with a long paired run), checked at ``p50:5%`` like ``rebirth regress --ab``,
   each check adding blocks of alternating runs until decided or its budget (40 runs) is spent;
   ``--trials`` checks per condition, quiet and with a busy loop started after the second block;
2. a farm of two emulated phones (each its own adbd process with rebirth's host runner): the unchanged
   build and the slower one, ``--farm-trials`` each, through ``profiler.paired.regress_ab`` as the CLI
   runs it.

Goals: a 10% slowdown caught in >= 95% of checks, an unchanged build flagged in <= 1% and passed (exit 0)
in >= 99%; the mean number of runs each needed. Run it alone.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import ROOT, Silent, write_results

MODELS = ROOT / "benchmarks" / "paired_models.py"
THRESHOLD = 0.05
ITERATIONS, WARMUP = 30, 2


def hog() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def one_check(a, b, device, options, budget, with_hog: bool):
    """One regression check; with a busy loop started once its second block is measured."""
    from rebirth.contract.paired import Question
    from rebirth.profiler.paired import measure_pairs

    started: list[subprocess.Popen] = []

    def stage(text: str) -> None:
        if with_hog and text.startswith("block 2 ") and not started:
            started.append(hog())

    try:
        return measure_pairs(a, b, device, options, Question(threshold=THRESHOLD), budget, stage=stage)
    finally:
        for process in started:
            process.kill()
            process.wait()


def true_slowdown(a, b, device, options) -> dict:
    """The injected slowdown, measured once with many alternating runs."""
    from rebirth.contract.paired import Budget, Question
    from rebirth.profiler.paired import measure_pairs

    long = measure_pairs(a, b, device, options, Question(precision=0.005), Budget(max_runs=200, max_seconds=900))
    return {"ratio": round(long.ratio, 4), "ci95": [round(long.low, 4), round(long.high, 4)], "blocks": long.blocks}


def one_device(trials: int) -> dict:
    from rebirth.contract.paired import Budget
    from rebirth.devices.local import LocalDevice
    from rebirth.profiler import ProfileOptions, prepare

    options = ProfileOptions(warmup=WARMUP, iterations=ITERATIONS, threads=1)
    base, slower = prepare(f"{MODELS}:base", "xnnpack"), prepare(f"{MODELS}:slower", "xnnpack")
    budget = Budget(max_runs=40, max_seconds=300)
    results: dict = {}
    with LocalDevice() as device:
        results["injected"] = true_slowdown(base, slower, device, options)
        print("injected slowdown", results["injected"], flush=True)
        for with_hog in (False, True):
            for name, candidate in (("unchanged", base), ("slower", slower)):
                start = time.perf_counter()
                checks = [one_check(base, candidate, device, options, budget, with_hog) for _ in range(trials)]
                key = f"{name}{' with hog' if with_hog else ''}"
                results[key] = summary(checks, time.perf_counter() - start)
                print(key, results[key], flush=True)
    return results


def summary(checks, seconds: float) -> dict:
    outcomes = Counter(check.outcome for check in checks)
    return {"trials": len(checks), "outcomes": dict(outcomes),
            "regression_rate": round(outcomes["regression"] / len(checks), 4),
            "pass_rate": round((outcomes["pass"] + outcomes["improvement"]) / len(checks), 4),
            "mean_runs": round(statistics.fmean(len(check.runs) for check in checks), 1),
            "max_runs": max(len(check.runs) for check in checks), "seconds": round(seconds, 1)}


def farm(trials: int) -> dict:
    """regress --ab on two emulated phones: unchanged and slower, ``trials`` each."""
    from rebirth.contract.paired import Budget
    from rebirth.profiler.paired import ABRequest, regress_ab

    with tempfile.TemporaryDirectory(prefix="rebirth-paired-bench-") as folder:
        phones = [start_phone(Path(folder) / f"phone{index}") for index in range(2)]
        try:
            targets = tuple(address for _, address in phones)
            results = {}
            for name, candidate in (("unchanged", "base"), ("slower", "slower")):
                start = time.perf_counter()
                checks = []
                for _ in range(trials):
                    request = ABRequest(f"{MODELS}:base", f"{MODELS}:{candidate}", targets, THRESHOLD,
                                        warmup=WARMUP, iterations=ITERATIONS, threads=1,
                                        budget=Budget(max_runs=40, max_seconds=300))
                    runs = regress_ab(request, Silent())
                    checks += [run.result.comparison for run in runs if run.result is not None]
                results[name] = summary(checks, time.perf_counter() - start)
                results[name]["phones"] = len(targets)
                print("farm", name, results[name], flush=True)
            return results
        finally:
            for process, _ in phones:
                process.kill()


def start_phone(root: Path) -> tuple[subprocess.Popen, str]:
    """An emulated phone in its own process, as a phone is its own machine; its address once it listens."""
    process = subprocess.Popen([sys.executable, "-m", "rebirth", "devices", "emulate", "--port", "0", "--root",
                                str(root)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline() if process.stdout else ""
    address = line.split(" listening on ")[1].split()[0].rstrip(",")
    return process, address


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--farm-trials", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/paired.json")
    args = parser.parse_args()
    results = {"threshold": THRESHOLD, "iterations_per_run": ITERATIONS, "warmup_per_run": WARMUP,
               "one_device": one_device(args.trials)}
    if args.farm_trials:
        results["farm"] = farm(args.farm_trials)
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
