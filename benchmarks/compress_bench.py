"""Benchmark of slimming combined with compression, per technique; results go to benchmarks/results/compress.json.

    python benchmarks/compress_bench.py [--models googlenet,googlenet-small,...] [--out PATH]

With --models, only those networks are measured again; the others' rows stay in the results file as
they were, each with the commit it was measured with.

For each zoo network (trained on the digits where rebirth trains it), on this host (`local`, XNNPACK, the
native runner) in one process:

1. profile the original and slim it with that profile, with every technique (the default):
   this writes slim-merged.pte (the merges alone, when a compression step followed), slim-reduced.pte (the
   merges and the channel reduction, when a decomposition followed), slim-float.pte (every float step) and
   slim.pte (int8), so each technique's contribution is a program of its own;
2. measure the original against each of those programs side by side (alternating runs, blocks until the
   speed-up's 95% interval is within ±3%): the speed-up, and each side's runner peak RSS and .pte weights
   from the traced run of each;
3. run every program on the 899 held-out digits with ExecuTorch's runtime: the top-1 of what actually runs
   (the slimmer's own judgement, in PyTorch, is in slim.json and copied here).

Goals (issue 23): within 0.5 points of top-1, GoogLeNet with LRN >= 8x, GoogLeNet-BN >= 3.5x, ResNet-50 >= 8x,
MobileNetV2 >= 3x; GoogLeNet's runner peak RSS >= 3x smaller; ResNet-50 profiled and slimmed in <= 600 s. Run it
alone on the machine: it takes tens of minutes with full-size GoogLeNet.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, commit, write_results

DEFAULT = ("googlenet-small,googlenet-bn-small,resnet50-small,mobilenet_v2-small,"
           "googlenet,googlenet-bn,resnet50,mobilenet_v2")


def runtime_top1(pte: Path, size: int) -> float:
    """Held-out top-1 of the program ``pte`` as ExecuTorch's runtime runs it, one image at a time."""
    import torch

    from rebirth.slimmer.data import digits
    from rebirth.slimmer.quantize import runtime_outputs

    held_out = digits(size).held_out
    labels = torch.cat([labels for _, labels in held_out])
    return 100.0 * (runtime_outputs(pte, held_out).argmax(1) == labels).float().mean().item()


def stages(outdir: Path, record) -> list[tuple[str, Path]]:
    """The programs slimming wrote, one per technique added: (name, path), as slim.json lists them."""
    from rebirth.contract.slim import FLOAT, MERGED, REDUCED, SLIM

    kinds = {merge.kind for merge in record.merges}
    written = {file.role: outdir / file.name for file in record.programs()}
    final_float = written.get(FLOAT, written[SLIM])
    name = "merges"
    found = [(name, written.get(MERGED, final_float))]
    if "reduce_channels" in kinds:
        name += " + channels"
        found.append((name, written.get(REDUCED, final_float)))
    if "low_rank" in kinds:
        name += " + low-rank"
        found.append((name, final_float))
    if FLOAT in written:
        found.append((name + " + int8", written[SLIM]))
    return found


def bench(name: str, folder: Path) -> dict:
    from rebirth.contract.paired import Budget, Question
    from rebirth.devices import open_device
    from rebirth.models.zoo import ZOO
    from rebirth.profiler import ProfileOptions, prepare
    from rebirth.profiler.paired import compare_programs
    from rebirth.slimmer import SlimOptions
    from rebirth.usecases.profiling import profile
    from rebirth.usecases.slimming import SlimRequest, slim_model

    model, outdir = f"zoo:{name}", folder / name
    options = ProfileOptions("local", "xnnpack")
    start = time.perf_counter()
    profile(model, options).save(outdir / "plan.json")
    record = slim_model(SlimRequest(model=model, outdir=outdir, profile=outdir / "plan.json",
                                    options=SlimOptions()),
                        say=lambda text: print(f"  {text}", flush=True))
    slim_s = time.perf_counter() - start
    size = ZOO[name].input_size
    original = prepare(model, "xnnpack")
    rows = []
    with open_device("local") as device:
        for stage, pte in stages(outdir, record):
            print(f"{name}: original vs {stage}", flush=True)
            program = prepare(str(pte), "xnnpack", pte.with_suffix(".etrecord"))
            paired = compare_programs(original, program, device, options, Question(precision=0.03),
                                      Budget(max_runs=40, max_seconds=300))
            result = paired.comparison
            rows.append({
                "stage": stage, "pte": pte.name, "speedup": round(result.speedup, 3),
                "speedup_interval": [round(value, 3) for value in result.speedup_interval],
                "outcome": result.outcome, "runs": len(result.runs),
                "p50_ms": [paired.a.latency.p50, paired.b.latency.p50],
                "peak_rss_bytes": [paired.a.memory.peak_rss_bytes, paired.b.memory.peak_rss_bytes],
                "weight_bytes": [paired.a.memory.constant_bytes, paired.b.memory.constant_bytes],
                "noise": list(result.reason.split("; ")) if result.outcome != "decided" else [],
                "runtime_top1": round(runtime_top1(pte, size), 2),
            })
            print(f"  {json.dumps(rows[-1])}", flush=True)
    accuracy = record.accuracy
    return {
        "model": model, "input_px": size, "slim_s": round(slim_s, 1), "wall_s": round(time.perf_counter() - start, 1),
        "measure": accuracy.metric if accuracy else None,
        "top1_before": accuracy.before.top1 if accuracy and accuracy.before else None,
        "top1_after_torch": accuracy.after.top1 if accuracy and accuracy.after else None,
        "steps": [{"kind": m.kind, "layers": len(m.layers), "detail": m.detail,
                   "est_gain_ms": round(m.gain_ms, 3), "macs_saved": m.macs_saved, "params_saved": m.params_saved,
                   "points_lost": m.points_lost}
                  for m in record.merges],
        "skipped": [(s.kind, len(s.layers), s.reason[:160]) for s in record.skipped if "under the" not in s.reason],
        "quantization": None if record.quantization is None else {
            "applied": record.quantization.applied, "quality": [
                record.quantization.quality_before, record.quantization.runtime_quality
                if record.quantization.runtime_quality is not None else record.quantization.quality_after],
            "reason": record.quantization.reason},
        "macs": [record.macs.before, record.macs.after], "params": [record.params.before, record.params.after],
        "stages": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=DEFAULT, help=f"comma-separated zoo names (default: {DEFAULT})")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/compress.json")
    args = parser.parse_args()
    measured_with = commit()  # the code that runs, whatever is committed while it does
    names = [name.strip() for name in args.models.split(",")]
    kept = []  # rows of networks not measured this time, as they were
    if args.out.is_file():
        earlier = json.loads(args.out.read_text())
        kept = [{"measured_with": earlier.get("measured_with"), **network} for network in earlier.get("networks", [])
                if network["model"].removeprefix("zoo:") not in names]
    order = DEFAULT.split(",")
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="rebirth-compress-bench-") as folder:
        for name in names:
            print(f"== {name}", flush=True)
            results.append({"measured_with": measured_with, **bench(name, Path(folder))})
            networks = sorted(kept + results, key=lambda network: order.index(network["model"].removeprefix("zoo:"))
                              if network["model"].removeprefix("zoo:") in order else len(order))
            write_results(args.out, {"networks": networks})  # survives a later failure
    for network in results:
        print(network["model"], [(row["stage"], row["speedup"], row["runtime_top1"]) for row in network["stages"]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
