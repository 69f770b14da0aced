"""The native runner against the Python one, and what building it costs.

    python benchmarks/runner_bench.py [--pairs 6] [--iterations 30] [--model zoo:googlenet]

1. build: the host runner and the arm64-v8a bundle built in an empty cache (the aarch64 wheel's
   download timed apart, from the package index), and the bundle's size;
2. idle memory: each runner's RSS just before it loads the model (goal for the native one: <= 10 MB;
   the Python one imports torch first);
3. latency: p50 of the native and the Python runner on the same .pte (XNNPACK), profiled alternately
   in pairs on this host, same threads, so that load and heat hit both alike (goal: within 3%);
4. peak RSS of each on the same model.

Run it alone: the machine's other work moves every number here.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, write_results


def build_times() -> dict:
    """Seconds to build the host runner and the arm64 bundle into an empty cache."""
    from rebirth.contract.cache import cache_root
    from rebirth.devices.native import build

    real_wheels = cache_root() / "runners" / "wheels"
    with tempfile.TemporaryDirectory(prefix="rebirth-runner-bench-") as folder:
        os.environ["REBIRTH_CACHE"] = folder
        start = time.perf_counter()
        build.host_runner()
        host_s = time.perf_counter() - start
        wheels = Path(folder) / "runners" / "wheels"
        start = time.perf_counter()
        build._download_wheel(wheels, build.importlib.metadata.version("executorch"), print)
        download_s = time.perf_counter() - start
        start = time.perf_counter()
        bundle = build.arm64_bundle(print)
        bundle_s = time.perf_counter() - start
        size = sum((bundle.folder / name).stat().st_size for name in bundle.files)
    os.environ.pop("REBIRTH_CACHE")
    if real_wheels.is_dir():
        shutil.rmtree(wheels, ignore_errors=True)
    return {"host_build_s": round(host_s, 2), "aarch64_wheel_download_s": round(download_s, 2),
            "arm64_bundle_build_s": round(bundle_s, 2), "arm64_bundle_bytes": size,
            "arm64_bundle_files": len(bundle.files)}


def paired(model: str, pairs: int, iterations: int, threads: int) -> dict:
    """Native and Python profiles of one .pte, alternately (ABBA order), with their p50s and memory."""
    from rebirth.devices.local import LocalDevice
    from rebirth.profiler import ProfileOptions, prepare, profile_program

    program = prepare(model, "xnnpack")
    options = ProfileOptions(warmup=3, iterations=iterations, threads=threads)
    runs: dict[str, list] = {"native": [], "python": []}
    for index in range(pairs):
        order = ("native", "python") if index % 2 == 0 else ("python", "native")
        for kind in order:
            with LocalDevice(runner=kind) as device:
                result = profile_program(program, device, options)
            runs[kind].append({"p50_ms": result.latency.p50, "cv": result.latency.cv,
                               "idle_rss_bytes": result.memory.baseline_rss_bytes,
                               "peak_rss_bytes": result.memory.peak_rss_bytes})
            print(kind, runs[kind][-1], flush=True)
    ratios = [n["p50_ms"] / p["p50_ms"] for n, p in zip(runs["native"], runs["python"])]
    median = {kind: {key: statistics.median(run[key] for run in values) for key in values[0]}
              for kind, values in runs.items()}
    logs = [math.log(ratio) for ratio in ratios]
    half = 2.2 * statistics.stdev(logs) / math.sqrt(len(logs))  # ~t(0.975) for 6-12 pairs
    mean = statistics.fmean(logs)
    return {"model": model, "pairs": pairs, "iterations": iterations, "threads": threads, "runs": runs,
            "median": median, "p50_ratio_native_over_python": {
                "geometric_mean": round(math.exp(mean), 4), "ci95": [round(math.exp(mean - half), 4),
                                                                     round(math.exp(mean + half), 4)],
                "median": round(statistics.median(ratios), 4), "min": round(min(ratios), 4),
                "max": round(max(ratios), 4)},
            "goals": {"native idle RSS": "<= 10 MB", "p50 native vs Python": "within 3%"}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="zoo:googlenet")
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/runner.json")
    args = parser.parse_args()
    results = {"build": build_times()}
    print(results["build"], flush=True)
    results["latency_and_memory"] = paired(args.model, args.pairs, args.iterations, args.threads)
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
