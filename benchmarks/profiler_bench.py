"""Benchmarks of the profiler itself; results go to benchmarks/results/profiler.json.

    python benchmarks/profiler_bench.py [--quick]

1. overhead: p50 of the same .pte with the ETDump on vs off, loaded side by side in one
   process, runs interleaved (goal: ratio <= 1.02);
2. stability: CV of p50 over 5 repeated profiles of one model (goal: <= 3%);
3. help: wall time of ``rebirth-profile --help`` (goal: <= 0.5 s);
4. attribution: share of op time attributed to a source layer, every zoo model on
   portable and XNNPACK (goal: >= 95%).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, write_results

from rebirth.contract import stats
from rebirth.contract.quiet import quiet
from rebirth.models import import_heavy


def overhead(pte: Path, rounds: int, per_round: int) -> dict:
    import torch
    from executorch.extension.pybindings.portable_lib import _load_for_executorch

    from rebirth.devices.runner import make_inputs

    with quiet():
        traced = _load_for_executorch(str(pte), enable_etdump=True, debug_buffer_size=0)
        plain = _load_for_executorch(str(pte), enable_etdump=False)
    inputs = make_inputs(plain)
    times = {"on": [], "off": []}
    for _ in range(5):
        traced.forward(inputs), plain.forward(inputs)
    for index in range(rounds):
        order = [("on", traced), ("off", plain)] if index % 2 == 0 else [("off", plain), ("on", traced)]
        for label, module in order:
            for _ in range(per_round):
                start = time.perf_counter()
                module.forward(inputs)
                times[label].append((time.perf_counter() - start) * 1000)
    on, off = stats.percentile(times["on"], 50), stats.percentile(times["off"], 50)
    return {"model": pte.name, "runs_each": len(times["on"]), "p50_on_ms": on, "p50_off_ms": off,
            "ratio": on / off, "goal": "<= 1.02", "torch_threads": torch.get_num_threads()}


def stability(model: str, repeats: int, iterations: int) -> dict:
    from rebirth.profiler import ProfileOptions
    from rebirth.usecases.profiling import profile

    p50s = [profile(model, ProfileOptions(warmup=5, iterations=iterations)).latency.p50 for _ in range(repeats)]
    mean, std = stats.mean_std(p50s)
    return {"model": model, "repeats": repeats, "iterations": iterations, "p50_ms": p50s, "cv": std / mean,
            "goal": "<= 0.03"}


def help_time(runs: int) -> dict:
    script = Path(sys.executable).parent / "rebirth-profile"
    command = [str(script), "--help"] if script.exists() else [sys.executable, "-m", "rebirth.cli", "--help"]
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        walls.append(time.perf_counter() - start)
    return {"command": " ".join(Path(c).name for c in command), "runs": runs, "median_s": statistics.median(walls),
            "max_s": max(walls), "goal": "<= 0.5"}


def attribution(models: list[str], backends: list[str]) -> list[dict]:
    from rebirth.models.zoo import ZOO
    from rebirth.profiler import ProfileOptions
    from rebirth.usecases.profiling import profile

    rows = []
    for model in models:
        for backend in backends:
            full = not model.endswith("-small")
            slow = full and backend == "portable"
            options = ProfileOptions(backend=backend, warmup=0 if slow else 2, iterations=2 if slow else 10)
            start = time.perf_counter()
            result = profile(f"zoo:{model}", options)
            rows.append({"model": model, "backend": backend, "input_px": ZOO[model].input_size,
                         "attributed_share": result.summary.attributed_share,
                         "non_tensor_share": result.summary.non_tensor_share,
                         "latency_p50_ms": result.latency.p50, "op_sum_ms": result.summary.total_ms,
                         "ops": len(result.ops), "seconds": round(time.perf_counter() - start, 1)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small models only, fewer repeats")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "profiler.json")
    parser.add_argument("--only", choices=["overhead", "stability", "help", "attribution"],
                        help="re-run one section and update it in --out")
    args = parser.parse_args()
    import_heavy()
    from rebirth.models.export import ensure_pte
    from rebirth.models.sources import parse_spec
    from rebirth.models.zoo import names

    overhead_model = "zoo:googlenet-small" if args.quick else "zoo:googlenet"
    sections = {
        "overhead": lambda: overhead(ensure_pte(parse_spec(overhead_model), "xnnpack").pte, rounds=10,
                                     per_round=20 if args.quick else 40),
        "stability": lambda: stability(overhead_model, repeats=5, iterations=30 if args.quick else 60),
        "help": lambda: help_time(runs=10),
        "attribution": lambda: attribution([n for n in names() if n.endswith("-small")] if args.quick else names(),
                                           ["xnnpack", "portable"]),
    }
    results = json.loads(args.out.read_text()) if args.only and args.out.exists() else {}
    results["date"] = time.strftime("%Y-%m-%d")
    for name, run in sections.items():
        if args.only in (None, name):
            results[name] = run()
    write_results(args.out, results)
    print(json.dumps({k: v for k, v in results.items() if k != "attribution"}, indent=1))
    if results.get("attribution"):
        worst = min(results["attribution"], key=lambda row: row["attributed_share"])
        print(f"lowest attributed share: {worst['attributed_share']:.3f} ({worst['model']}, {worst['backend']})")


if __name__ == "__main__":
    main()
