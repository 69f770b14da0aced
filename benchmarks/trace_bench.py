"""The size of a `--trace` file: GoogLeNet profiled with 100 executions on `local`, its timeline written as a
Chrome trace with rebirth's cap on op slices and without it.

    python benchmarks/trace_bench.py [--model zoo:googlenet] [--iterations 100] [--output PATH]

Goal: at most 1 MB per 100 executions of GoogLeNet (the cap keeps the ops of evenly spaced executions and of the
slowest, and every execution's span). The uncapped size says what the cap saves. Run it alone: it takes the
machine for GoogLeNet's 100 executions (seconds on XNNPACK).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import ROOT, write_results

GOAL_BYTES_PER_100 = 1_000_000


def measure(model: str, iterations: int, warmup: int) -> dict:
    from rebirth.profiler import ProfileOptions, Timelines, cap
    from rebirth.profiler.timeline import DEFAULT_MAX_SLICES
    from rebirth.reports.chrome_trace import write_trace
    from rebirth.usecases.profiling import profile

    timelines = Timelines(max_slices=None)
    profiled = profile(model, ProfileOptions(device="local", iterations=iterations, warmup=warmup),
                       timelines=timelines)
    (full,) = timelines.items
    capped = cap(full, DEFAULT_MAX_SLICES)
    with tempfile.TemporaryDirectory(prefix="rebirth-trace-bench-") as folder:
        written = write_trace(Path(folder) / "capped.json", [capped])
        uncapped = write_trace(Path(folder) / "uncapped.json", [full])
    executions = len(full.executions)
    per_100 = written.bytes * 100 / executions
    return {"model": model, "backend": "xnnpack", "device": "local", "warmup": warmup, "iterations": iterations,
            "executions": executions, "op_slices_per_execution": max(len(e.slices) for e in full.executions),
            "cap_op_slices": DEFAULT_MAX_SLICES, "executions_with_ops": capped.detailed,
            "bytes": written.bytes, "bytes_per_100_executions": round(per_100),
            "uncapped_bytes": uncapped.bytes, "clamped_slices": full.clamped,
            "latency_p50_ms": profiled.latency.p50, "goal_bytes_per_100_executions": GOAL_BYTES_PER_100,
            "met": per_100 <= GOAL_BYTES_PER_100}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zoo:googlenet")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "trace.json")
    args = parser.parse_args()
    result = measure(args.model, args.iterations, args.warmup)
    print(f"{result['model']}: {result['executions']} executions, {result['op_slices_per_execution']} op slices each; "
          f"trace {result['bytes'] / 1e6:.3f} MB ({result['bytes_per_100_executions'] / 1e6:.3f} MB per 100 "
          f"executions, ops of {result['executions_with_ops']} kept), uncapped {result['uncapped_bytes'] / 1e6:.3f} MB")
    write_results(args.output, {"trace": result})


if __name__ == "__main__":
    main()
