"""Benchmark of the result store at a farm's scale (issue 25): 100,000 synthetic runs (50 devices x 20 models x
100 commits) in SQLite and in PostgreSQL, timed through the command line as a user runs it, each command in a
fresh process (Python's start-up included, and measured alone).

    python benchmarks/store_bench.py [--devices 50] [--models 20] [--commits 100] [--repeats 3] [--no-postgres]

Each device is its own fingerprint. Every run has its own summary: p50 with 1.5% run-to-run noise (log-normal),
a 5% step from commit 60 in model 0's series on devices 0-9, a drift of 1% every 10 commits from commit 40 in
model 1's series on devices 0-9, the other 980 series flat; one run in fifty flagged busy. The Profile stored
beside each summary is the series' own for the runs a command reads (the baseline's and the latest two) and one
copy per series for the others (the same bytes per row: the database is as large as with distinct Profiles).
Baseline ``main`` is commit 50's runs.

Goals (issue 25): `results list` <= 1 s; `regress --baseline` of one farm run of 50 phones (one model) <= 2 s;
`history -o` for one model on 50 devices <= 5 s and a page <= 10 MB; one run stored <= 20 ms; 16 processes x
200 runs at once, 3,200 runs, none lost or duplicated; the planted steps found >= 95%, the drifts found, false
change points <= 1 per 100 flat series. Results go to benchmarks/results/store.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from common import ROOT, write_results

WRITER = """
import sys, time
from rebirth.results import open_store
from tests.synthetic import synthetic_profile

profile = synthetic_profile(ops=100, samples=50, seed=int(sys.argv[3]), device=f"writer{sys.argv[3]}")
seconds = []
with open_store(sys.argv[1]) as store:
    for _ in range(int(sys.argv[2])):
        start = time.perf_counter()
        store.save_run(profile, "bench")
        seconds.append(time.perf_counter() - start)
print(" ".join(f"{value:.6f}" for value in seconds))
"""


STEP_FROM, DRIFT_FROM, PLANTED, BASELINE_COMMIT, NOISE = 60, 40, 10, 50, 0.015


def build(location: str, devices: int, models: int, commits: int) -> tuple[int, float]:
    """The store (see the module's doc) at ``location``; (runs stored, seconds)."""
    import hashlib

    from rebirth.contract.notes import BUSY, Note
    from rebirth.contract.profile import Latency
    from rebirth.contract.stored import StoredRun
    from rebirth.results import open_store
    from rebirth.results.database import pack
    from tests.synthetic import synthetic_profile

    rng = random.Random(25)
    start = time.perf_counter()
    begin = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    saved = datetime.datetime.now(datetime.UTC).isoformat()
    stored = 0
    commits_sha = {commit: hashlib.sha1(f"commit {commit}".encode()).hexdigest() for commit in range(commits + 1)}
    with open_store(location) as store, store._write():
        for device in range(devices):
            bases = []
            for model in range(models):
                base = synthetic_profile(ops=100, samples=50, seed=device * models + model, device=f"phone{device}",
                                         source=f"zoo:model{model}")
                bases.append(dataclasses.replace(base, device=dataclasses.replace(
                    base.device, product_model=f"Phone {device % 5}",
                    runner_sha256=hashlib.sha256(f"runner{device}".encode()).hexdigest())))
            copies = [pack(base) for base in bases]
            number = 0
            for commit in range(1, commits + 1):  # each commit's farm runs, one per model: numbered per device
                when = (begin + datetime.timedelta(hours=6 * commit + device / 100)).isoformat(timespec="seconds")
                for model, base in enumerate(bases):
                    number += 1
                    level = 0.0
                    if device < PLANTED and model == 0 and commit >= STEP_FROM:
                        level = math.log(1.05)
                    if device < PLANTED and model == 1 and commit >= DRIFT_FROM:
                        level = math.log(1.01) * (commit - DRIFT_FROM) / 10
                    scale = math.exp(level + rng.gauss(0, NOISE))
                    profile = dataclasses.replace(base, latency=Latency.from_samples(
                        [value * scale for value in base.latency.raw]))
                    if rng.random() < 0.02:
                        profile = dataclasses.replace(profile, noise=(Note(BUSY, "the device was busy"),))
                    run = StoredRun.of("", number, profile, f"phone{device}", commits_sha[commit], when,
                                       f"commit{commit}-model{model}")
                    own = commit >= commits - 1 or commit == BASELINE_COMMIT
                    store._insert(run, pack(profile) if own else copies[model])
                    if commit == BASELINE_COMMIT:
                        store._execute("INSERT INTO baselines (name, fingerprint, number, saved) "
                                       "VALUES ('main', ?, ?, ?)", (run.fingerprint, number, saved))
                    stored += 1
    return stored, time.perf_counter() - start


def timed(command: list[str], repeats: int, **options) -> tuple[list[float], subprocess.CompletedProcess]:
    seconds, done = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, **options)
        seconds.append(time.perf_counter() - start)
    assert done is not None
    return seconds, done


def measure(location: str, args: argparse.Namespace, scratch: Path) -> dict:
    """Build the store at ``location`` and time every command on it."""
    rebirth = [sys.executable, "-m", "rebirth"]
    stored, build_s = build(location, args.devices, args.models, args.commits)
    print(f"{location}: built {stored} runs in {build_s:.0f} s")
    results: dict = {"runs": stored, "build_s": build_s, "commands": {}}
    database = Path(location) / "rebirth.sqlite"
    if database.exists():
        results["database_bytes"] = database.stat().st_size
    page = scratch / "history.html"
    summary = scratch / "history.md"
    for name, command in (
            ("results list", ["results", "list"]),
            ("regress --baseline main --model zoo:model0 (one farm run of 50 phones)",
             ["regress", "--baseline", "main", "--model", "zoo:model0", "--fail", "p50:5%"]),
            ("history --model zoo:model0 -o history.html (50 devices)",
             ["history", "--model", "zoo:model0", "-o", str(page)])):
        seconds, done = timed([*rebirth, *command, "--store", location], args.repeats)
        results["commands"][name] = {"seconds": seconds, "median_s": statistics.median(seconds),
                                     "exit": done.returncode, "lines": len(done.stdout.splitlines()),
                                     "stderr": done.stderr[-300:]}
        print(f"  {name}: median {statistics.median(seconds):.2f} s (exit {done.returncode})")
    results["history_page_bytes"] = page.stat().st_size
    # every series once, for the change points found (timed, without a goal)
    seconds, done = timed([*rebirth, "history", "--summary", str(summary), "--store", location], 1)
    results["commands"]["history --summary (every series)"] = {"seconds": seconds, "exit": done.returncode}
    results["changes"] = changes_found(summary.read_text(), args.devices, args.models)
    print(f"  history of every series: {seconds[0]:.1f} s; {results['changes']}")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    _, done = timed([sys.executable, "-c", WRITER, location, str(args.writes), "0"], 1, env=env, cwd=ROOT)
    single = [float(value) for value in done.stdout.split()]
    results["one_writer"] = {"runs": len(single), "median_ms": 1000 * statistics.median(single),
                             "p95_ms": 1000 * sorted(single)[int(0.95 * len(single))]}
    print(f"  one run stored (one writer): median {results['one_writer']['median_ms']:.1f} ms")
    from rebirth.results import open_store

    with open_store(location) as store:
        before = store.count()
    start = time.perf_counter()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, location, str(args.writes), str(index + 1)],
                                stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
               for index in range(args.writers)]
    outputs = [writer.communicate()[0] for writer in writers]
    wall = time.perf_counter() - start
    every = [float(value) for output in outputs for value in output.split()]
    with open_store(location) as store:
        after = store.count()
        [(count, distinct, low, high)] = store._query(
            "SELECT COUNT(*), COUNT(DISTINCT number), MIN(number), MAX(number) FROM runs WHERE commit_sha = 'bench'")
    results["concurrent_writers"] = {
        "writers": args.writers, "runs_each": args.writes, "wall_s": wall, "stored": after - before,
        "expected": args.writers * args.writes, "exit_codes": [writer.returncode for writer in writers],
        "numbers_distinct_and_gapless": count == distinct == high - low + 1 == args.writes * (args.writers + 1),
        "median_ms": 1000 * statistics.median(every), "p95_ms": 1000 * sorted(every)[int(0.95 * len(every))]}
    print(f"  {args.writers} writers x {args.writes}: {after - before} of {args.writers * args.writes} stored in "
          f"{wall:.1f} s; distinct and gapless: {results['concurrent_writers']['numbers_distinct_and_gapless']}")
    return results


def changes_found(summary: str, devices: int, models: int) -> dict:
    """From ``history --summary``: planted steps and drifts found, and flat series with a change point."""
    changed: dict[tuple[str, str], list[str]] = {}
    for line in summary.splitlines():
        if line.startswith("- `"):
            device, model = line.split("`")[1], line.split("`")[3]
            changed.setdefault((device, model), []).append("step" if " step " in line else "drift")
    planted_step = {(f"phone{index}", "zoo:model0@xnnpack") for index in range(PLANTED)}
    planted_drift = {(f"phone{index}", "zoo:model1@xnnpack") for index in range(PLANTED)}
    flat = devices * models - len(planted_step) - len(planted_drift)
    return {"planted_steps": len(planted_step),
            "steps_found": sum(1 for key in planted_step if "step" in changed.get(key, [])),
            "planted_drifts": len(planted_drift),
            "drifts_found": sum(1 for key in planted_drift if changed.get(key)),
            "drifts_found_as_drift": sum(1 for key in planted_drift if "drift" in changed.get(key, [])),
            "flat_series": flat,
            "flat_with_a_change": sum(1 for key in changed if key not in planted_step | planted_drift)}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--commits", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="times each command is run (default: 3)")
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--writes", type=int, default=200, help="runs each writer stores (default: 200)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "store.json")
    args = parser.parse_args(argv)
    results: dict = {"devices": args.devices, "models": args.models, "commits": args.commits, "stores": {}}
    with tempfile.TemporaryDirectory(prefix="rebirth-store-bench-") as scratch:
        startup, _ = timed([sys.executable, "-m", "rebirth", "--help"], args.repeats)
        results["startup_s"] = startup
        print(f"rebirth --help (start-up alone): median {statistics.median(startup):.2f} s")
        results["stores"]["sqlite"] = measure(str(Path(scratch) / "store"), args, Path(scratch))
        if not args.no_postgres:
            from tests.test_store_postgres import postgres_server

            with postgres_server() as database:
                results["stores"]["postgresql"] = measure(database(), args, Path(scratch))
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
