"""Benchmark of the slimmer; results go to benchmarks/results/slimmer.json.

    python benchmarks/slimmer_bench.py [--models googlenet-small,resnet50-small] [--budgets 0.5,2,5]

For each model: profile on local (XNNPACK and portable), `rebirth slim` with the XNNPACK profile,
profile the slimmed model on both backends, all in one run; p50 ratio, planned memory and peak RSS
above the runner's idle baseline before and after, accuracy before and after (top-1 on held-out
digits for the networks rebirth trains, else agreement with the original). For the first model,
the trade-off curve: the same for each accuracy budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, write_results


def compared(before, after) -> dict:
    """Before/after numbers of two Profiles measured in the same run."""

    def extra(p):
        return (p.memory.peak_rss_bytes or 0) - (p.memory.baseline_rss_bytes or 0)

    return {
        "p50_ms": {"before": before.latency.p50, "after": after.latency.p50},
        "speedup": before.latency.p50 / after.latency.p50,
        "planned_bytes": {"before": before.memory.planned_bytes, "after": after.memory.planned_bytes},
        "planned_ratio": before.memory.planned_bytes / max(1, after.memory.planned_bytes),
        "peak_rss_above_idle_bytes": {"before": extra(before), "after": extra(after)},
        "non_tensor_share": {"before": before.summary.non_tensor_share, "after": after.summary.non_tensor_share},
    }


def measure(model: str, budget: float, folder: Path, iterations: int, portable: bool = True) -> dict:
    from rebirth.profiler import ProfileOptions
    from rebirth.slimmer import SlimOptions
    from rebirth.usecases.profiling import profile
    from rebirth.usecases.slimming import SlimRequest, slim_model

    before = profile(model, ProfileOptions(iterations=iterations))
    profile_path = folder / "before.json"
    before.save(profile_path)
    start = time.perf_counter()
    record = slim_model(SlimRequest(model=model, outdir=folder / "out", profile=profile_path,
                                    options=SlimOptions(max_accuracy_drop=budget)), say=print)
    slim_s = time.perf_counter() - start
    after = profile(str(folder / "out" / "slim.pte"), ProfileOptions(iterations=iterations))
    backends = {"xnnpack": compared(before, after)}
    if portable:
        options = ProfileOptions(backend="portable", iterations=iterations)
        backends["portable"] = compared(profile(model, options), profile(str(folder / "out" / "slim.pt2"), options))
    return {
        "model": model, "budget_points": budget, "slim_s": slim_s, **backends["xnnpack"], "backends": backends,
        "merges": [(m.kind, m.layers) for m in record.merges],
        "skipped": [(s.kind, s.layers, s.reason) for s in record.skipped],
        "accuracy": record.to_dict()["accuracy"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="googlenet-small,googlenet-bn-small,alexnet-small,resnet50-small,"
                                              "mobilenet_v2-small")
    parser.add_argument("--budgets", default="0.5,2,5", help="accuracy budgets for the curve (first model)")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/slimmer.json")
    args = parser.parse_args()
    results = {"backend": "xnnpack", "device": "local", "models": [], "curve": []}
    models = [f"zoo:{name}" for name in args.models.split(",")]
    with tempfile.TemporaryDirectory(prefix="rebirth-slim-bench-") as folder:
        for index, model in enumerate(models):
            entry = measure(model, 0.5, Path(folder) / f"m{index}", args.iterations)
            results["models"].append(entry)
            print(json.dumps(entry, indent=1), flush=True)
        for budget in [float(b) for b in args.budgets.split(",")]:
            if budget == 0.5:
                results["curve"].append(results["models"][0])
                continue
            entry = measure(models[0], budget, Path(folder) / f"curve{budget}", args.iterations, portable=False)
            results["curve"].append(entry)
            print(json.dumps(entry, indent=1), flush=True)
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
