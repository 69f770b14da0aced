"""Benchmark of what a phone does under a measurement, on the emulated phone with a body; results go to
benchmarks/results/phone.json.

    python benchmarks/phone_bench.py [--repeats 3] [--pairs 5]

Thermal gating: an unchanged program against itself on a phone that starts hot (55 °C, over its 45 °C trip
point: clocks at 60% until it falls below 43 °C), side by side, ungated (``--no-thermal-gate``: no wait, no
block left out) and gated (cool below 40 °C before each block; blocks whose clocks moved, that throttled or
that ran too hot discarded and re-run), each from a fresh hot phone, ``--repeats`` times. The phone's runner
sleeps its executions (10 ms each, stretched by the clock it runs at), so the heat moves the timings as a
phone's would; the ETDump it returns is a real one, recorded once. Goal: the gated ratio within 2% of 1.

Energy per inference: two programs measured on the emulated phone's real runner (it computes on this host),
the second with about 30% more multiply-adds (one more 32-channel 3x3 convolution at 64 px), ``--pairs`` times
alternating, one untraced run of 3 s each. The phone's fuel gauge draws 450 mA per core its runners keep busy
(their CPU time, read from /proc), with noise, in the galaxy-s6's mA; rebirth reads it over ADB at 10 Hz and
subtracts the idle draw read just before. The runner's CPU time per execution gives the CPU-time ratio. Goal:
the energy ratio within 5% of the CPU-time ratio, and its 95% interval above 1.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, write_results

NETWORKS = '''
import torch


def _net(convs):
    layers = [torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU()]
    for _ in range(convs):
        layers += [torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU()]
    torch.manual_seed(0)
    return torch.nn.Sequential(*layers).eval(), (torch.randn(1, 3, 64, 64),)


def original():
    return _net(3)


def more_work():
    return _net(4)
'''
MACS = {"original": 64 * 64 * 32 * (3 * 9 + 3 * 32 * 9), "more_work": 64 * 64 * 32 * (3 * 9 + 4 * 32 * 9)}


def phone(root: Path, **physics):
    from rebirth.devices.emulator import PHONES, EmulatedPhone, Physics

    runner = physics.pop("runner", None)
    return EmulatedPhone(root, PHONES["galaxy-s6"], runner=runner, physics=Physics(**physics)).start()


def inventory(folder: Path, address: str, extra: str = "") -> None:
    (folder / "devices.toml").write_text(f'[devices.s6]\naddress = "{address}"\n{extra}')


def gating(work: Path, repeats: int) -> dict:
    from rebirth.contract.paired import Budget
    from rebirth.contract.quiet import quiet
    from rebirth.devices.emulator import SleepingRunner
    from rebirth.devices.registry import open_device
    from rebirth.profiler import ProfileOptions
    from rebirth.profiler.measure import prepare
    from rebirth.profiler.paired import compare_programs
    from tests.conftest import export_plain, make_firenet

    model, inputs = make_firenet()
    with quiet():
        pte = export_plain(model, inputs, "portable", work / "firenet.pte")
    program = prepare(str(pte), "portable")
    physics = dict(ambient_c=30.0, start_c=55.0, heat_per_core_c=5.0, tau_s=15.0, trip_c=45.0, release_c=43.0,
                   plugged=False)
    budget = Budget(max_runs=40, max_seconds=300.0, min_blocks=4)
    runs: dict[str, list[dict]] = {"ungated": [], "gated": []}
    for repeat in range(repeats):
        for mode in (("ungated", "gated") if repeat % 2 == 0 else ("gated", "ungated")):
            root = work / f"{mode}-{repeat}"
            emulated = phone(root, runner=SleepingRunner(10.0, work / "recordings"), **physics)
            cwd = root / "cwd"
            cwd.mkdir(parents=True)
            os.chdir(cwd)
            inventory(cwd, emulated.address, "cool_below_c = 40\ncool_wait_s = 120\n")
            options = ProfileOptions(device="s6", warmup=2, iterations=100, threads=2,
                                     thermal_gate=mode == "gated")
            start = time.monotonic()
            try:
                with open_device("s6") as device:
                    result = compare_programs(program, program, device, options, budget=budget)
            finally:
                emulated.stop()
            comparison = result.comparison
            runs[mode].append({
                "ratio": comparison.ratio, "low": comparison.low, "high": comparison.high,
                "outcome": comparison.outcome, "reason": comparison.reason, "blocks": comparison.blocks,
                "runs": len(comparison.runs), "discarded": comparison.discarded,
                "waited_s": round(sum(run.waited_s for run in comparison.runs), 1),
                "seconds": round(time.monotonic() - start, 1),
                "block_ratios": _block_ratios(comparison),
                "a_p50_ms": statistics.median(run.latency_ms for run in comparison.side("a")),
                "throttled_runs": sum(1 for run in comparison.runs
                                      if any(note.code == "throttled" for note in run.noise)),
            })
            print(f"{mode} {repeat + 1}: {comparison.ratio:.3f} ({comparison.low:.3f}-{comparison.high:.3f}) "
                  f"{comparison.outcome}, {comparison.blocks} blocks, discarded {comparison.discarded}", flush=True)
    return {"physics": physics, "execution_ms": 10.0, "iterations": 100, "limit_c": 40.0, **runs}


def _block_ratios(comparison) -> list[float]:
    by_block: dict[int, dict[str, float]] = {}
    for run in comparison.runs:
        if not run.discarded:
            by_block.setdefault(run.block, {})[run.side] = run.latency_ms
    return [round(sides["b"] / sides["a"], 4) for _, sides in sorted(by_block.items()) if len(sides) == 2]


def energy(work: Path, pairs: int) -> dict:
    from rebirth.devices.registry import open_device
    from rebirth.profiler import ProfileOptions
    from rebirth.profiler.measure import energy_of, prepare, time_program

    source = work / "networks.py"
    source.write_text(NETWORKS)
    programs = {name: prepare(f"{source}:{name}", "xnnpack") for name in MACS}
    emulated = phone(work / "energy-phone", plugged=False, noise_ma=15.0, heat_per_core_c=2.0)
    cwd = work / "energy-cwd"
    cwd.mkdir()
    os.chdir(cwd)
    inventory(cwd, emulated.address)
    measured: dict[str, list[dict]] = {name: [] for name in MACS}
    try:
        with open_device("s6") as device:
            for pair in range(pairs):
                order = list(MACS) if pair % 2 == 0 else list(reversed(MACS))
                for name in order:
                    iterations = measured[name][0]["iterations"] if measured[name] else _iterations(
                        programs[name], device)
                    options = ProfileOptions(device="s6", warmup=3, iterations=iterations, threads=1)
                    latency, result, described = time_program(programs[name], device, options)
                    per_execution = statistics.fmean(result.log.execution_ms)
                    spent = energy_of(result, described.kind, latency.mean)
                    ticks = result.runner_cpu_ticks or 0
                    measured[name].append({
                        "iterations": iterations, "mean_ms": per_execution, "p50_ms": latency.p50,
                        "mj": spent.mj_per_inference, "low": spent.low, "high": spent.high,
                        "why_not": spent.why_not, "run_ma": spent.run_ma, "idle_ma": spent.idle_ma,
                        "readings": spent.readings,
                        "cpu_ms_per_execution": ticks * 1000 / os.sysconf("SC_CLK_TCK") / (iterations + 3)})
                    print(f"{name} {pair + 1}: {spent.shown()}; CPU "
                          f"{measured[name][-1]['cpu_ms_per_execution']:.2f} ms per execution", flush=True)
    finally:
        emulated.stop()
    ratios = [b["mj"] / a["mj"] for a, b in zip(measured["original"], measured["more_work"]) if a["mj"] and b["mj"]]
    cpu = [b["cpu_ms_per_execution"] / a["cpu_ms_per_execution"]
           for a, b in zip(measured["original"], measured["more_work"])]
    logs = [math.log(r) for r in ratios]
    from scipy.special import stdtrit

    half = float(stdtrit(len(logs) - 1, 0.975)) * statistics.stdev(logs) / math.sqrt(len(logs)) if len(logs) > 1 \
        else math.inf
    mean = statistics.fmean(logs) if logs else math.nan
    return {"macs": MACS, "pairs": measured, "energy_ratio": math.exp(mean), "energy_low": math.exp(mean - half),
            "energy_high": math.exp(mean + half), "cpu_ratio": statistics.median(cpu), "cpu_ratios": cpu,
            "energy_ratios": ratios, "macs_ratio": MACS["more_work"] / MACS["original"]}


def _iterations(program, device) -> int:
    """Executions for a run of about 3 s, from a short run."""
    from rebirth.profiler import ProfileOptions
    from rebirth.profiler.measure import time_program

    latency, _, _ = time_program(program, device, ProfileOptions(device="s6", warmup=3, iterations=20, threads=1,
                                                                 thermal_gate=False))
    return max(20, int(3000 / max(latency.mean, 0.01)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--only", choices=("gating", "energy"), default=None)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/phone.json")
    args = parser.parse_args()
    results: dict = {}
    if args.output.is_file():
        import json

        previous = json.loads(args.output.read_text())
        results = {key: previous[key] for key in ("gating", "energy") if key in previous}
    with tempfile.TemporaryDirectory(prefix="rebirth-phone-bench-") as folder:
        if args.only in (None, "gating"):
            results["gating"] = gating(Path(folder), args.repeats)
        if args.only in (None, "energy"):
            results["energy"] = energy(Path(folder), args.pairs)
    os.chdir(ROOT)
    write_results(args.output, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
