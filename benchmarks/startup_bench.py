"""Commands that start at once: rebirth's own time around the runner it drives, on `local` with the cached native
runner, the same .pte run both ways in one run of this script, alternating.

    python benchmarks/startup_bench.py [--repeats 7]

- profile: ``rebirth-profile X.pte --iterations 5 -q`` against the bare runner on the same arguments (its
  ``--num_executions`` and ``--etdump_path``): the difference is what rebirth adds (its start, reading the .pte, the
  ETRecord and the ETDump, the device state, the Profile);
- the same for a .pte seen for the first time (a fresh copy each round, its ETRecord beside it);
- compare: ``rebirth compare A.pte B.pte`` against the runs it makes (each run of the runner replayed bare);
- ``rebirth --help`` and ``rebirth devices list``.

Results in benchmarks/results/startup.json; docs/benchmarks.md shows them (``python benchmarks/tables.py``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, write_results

BIN = Path(sys.executable).parent
WARMUP, ITERATIONS = 3, 5


def timed(command: list[str], **kwargs) -> float:
    """Wall seconds of one run of ``command`` (which must succeed)."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return took


def bare(runner: Path, model: Path, folder: Path, executions: int, paired: Path | None = None) -> float:
    command = [str(runner), "--model_path", str(model), "--num_executions", str(executions), "--warmup",
               str(WARMUP), "--etdump_path", str(folder / "bare.etdp")]
    if paired is not None:
        command += ["--paired_model_path", str(paired), "--no_etdump"]
    return timed(command)


def profile_overhead(runner: Path, model: Path, folder: Path, repeats: int, fresh: bool) -> dict:
    """rebirth-profile minus the bare runner, alternating; ``fresh``: a new copy of the .pte each round."""
    cli, runs = [], []
    for index in range(repeats):
        target = model
        if fresh:
            target = folder / f"seen{index}" / model.name
            target.parent.mkdir()
            shutil.copy(model, target)
            shutil.copy(model.with_suffix(".etrecord"), target.with_suffix(".etrecord"))
        runs.append(bare(runner, target, folder, WARMUP + ITERATIONS))
        cli.append(timed([str(BIN / "rebirth-profile"), str(target), "--iterations", str(ITERATIONS), "--warmup",
                          str(WARMUP), "-q"], cwd=folder))
    overheads = [a - b for a, b in zip(cli, runs)]
    return {"runs": repeats, "command_s": cli, "bare_runner_s": runs, "overhead_s": overheads,
            "median_overhead_s": statistics.median(overheads), "fresh_copy_each_round": fresh}


def compare_overhead(runner: Path, a: Path, b: Path, folder: Path, repeats: int) -> dict:
    """rebirth compare minus the runs it made, replayed bare: each paired block, then one traced run of each."""
    commands, replays = [], []
    for index in range(repeats):
        record = folder / f"comparison{index}.json"
        commands.append(timed([str(BIN / "rebirth"), "compare", str(a), str(b), "--iterations", "20", "--warmup",
                               str(WARMUP), "--max-runs", "8", "--precision", "50", "--json", str(record)],
                              cwd=folder))
        comparison = json.loads(record.read_text())
        executions = WARMUP + 20
        replay = sum(bare(runner, a, folder, executions, paired=b) for _ in range(comparison["blocks"]))
        replay += bare(runner, a, folder, executions) + bare(runner, b, folder, executions)
        replays.append(replay)
    overheads = [c - r for c, r in zip(commands, replays)]
    return {"runs": repeats, "command_s": commands, "runs_replayed_s": replays, "overhead_s": overheads,
            "median_overhead_s": statistics.median(overheads)}


def command_time(argv: list[str], repeats: int, folder: Path) -> dict:
    walls = [timed(argv, cwd=folder) for _ in range(repeats)]
    return {"command": " ".join(Path(argv[0]).name if i == 0 else arg for i, arg in enumerate(argv)),
            "runs": repeats, "median_s": statistics.median(walls), "max_s": max(walls)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "startup.json")
    args = parser.parse_args()
    from rebirth.devices.native.build import host_runner
    from rebirth.models import export_model

    runner = host_runner()
    with tempfile.TemporaryDirectory(prefix="rebirth-startup-") as name:
        folder = Path(name)
        a = export_model("zoo:googlenet-small", "xnnpack", folder / "a.pte").pte
        b = export_model("zoo:mobilenet_v2-small", "xnnpack", folder / "b.pte").pte
        timed([str(BIN / "rebirth-profile"), str(a), "--iterations", "2", "-q"], cwd=folder)  # warm the OS caches
        results = {
            "model": "zoo:googlenet-small (xnnpack)", "compared_with": "zoo:mobilenet_v2-small (xnnpack)",
            "warmup": WARMUP, "iterations": ITERATIONS,
            "profile": profile_overhead(runner, a, folder, args.repeats, fresh=False),
            "profile_first_seen": profile_overhead(runner, a, folder, args.repeats, fresh=True),
            "compare": compare_overhead(runner, a, b, folder, max(3, args.repeats // 2)),
            "help": command_time([str(BIN / "rebirth"), "--help"], 10, folder),
            "devices_list": command_time([str(BIN / "rebirth"), "devices", "list"], 10, folder),
            "goals": {"profile": 1.0, "profile_first_seen": 2.0, "compare": 1.5, "help": 0.1, "devices_list": 0.3},
        }
    write_results(args.out, results)
    for key in ("profile", "profile_first_seen", "compare"):
        print(f"{key}: rebirth's own time, median {results[key]['median_overhead_s']:.2f} s "
              f"(goal <= {results['goals'][key]} s)")
    for key in ("help", "devices_list"):
        print(f"{results[key]['command']}: median {results[key]['median_s']:.3f} s (goal <= {results['goals'][key]} s)")


if __name__ == "__main__":
    main()
