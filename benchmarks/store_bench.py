"""Benchmark of the result store at a farm's years (issue 25): a SQLite store of 100,000 runs (20 phones x 10
models x 500 nightly runs), timed through the command line as a user runs it, each command in a fresh process.

    python benchmarks/store_bench.py [--phones 20] [--models 10] [--runs 500] [--repeats 3] [--out PATH]

The store is built in one transaction. Every run has its own summary (p50 drawn with 2% run-to-run noise, a 6%
step in one series in ten, the busy flag on one run in fifty); the Profile stored beside it is the series' own
for its latest two runs and one copy per series for the older ones (the same bytes per row: the database is as
large as with distinct Profiles, and no query measured reads an older run's Profile).

Goals (issue 25): `rebirth results list` <= 1 s; `rebirth regress --baseline` <= 2 s; `rebirth history -o`
<= 5 s and a page <= 10 MB; storing one run <= 20 ms; 16 writers x 200 runs at once, every run stored under its
own number. Results go to benchmarks/results/store.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
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


def build(path: Path, phones: int, models: int, runs: int) -> tuple[int, float]:
    """The store of ``phones x models x runs`` runs, with baseline ``main`` at each series' 400th run (or its
    middle); (runs stored, seconds)."""
    from rebirth.contract.profile import Latency
    from rebirth.contract.stored import StoredRun
    from rebirth.results import open_store
    from rebirth.results.database import pack
    from tests.synthetic import synthetic_profile

    rng = random.Random(25)
    start = time.perf_counter()
    begin = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    stored = 0
    with open_store(path) as store:
        baseline = min(runs - 1, 400)
        members: dict[str, list[tuple[str, int, None]]] = {"main": []}
        with store._write():
            for phone in range(phones):
                for model in range(models):
                    base = synthetic_profile(ops=100, samples=50, seed=phone * models + model, device=f"phone{phone}",
                                             source=f"zoo:model{model}")
                    base = dataclasses.replace(base, device=dataclasses.replace(
                        base.device, product_model=f"Phone {phone % 5}", runner_sha256=f"{phone:064x}"))
                    copy = pack(base)
                    stepping = model == 0
                    for number in range(1, runs + 1):
                        level = 1.06 if stepping and number > runs // 2 else 1.0
                        scale = level * rng.lognormvariate(0, 0.02)
                        raw = [value * scale for value in base.latency.raw]
                        profile = dataclasses.replace(base, latency=Latency.from_samples(raw))
                        if number % 50 == 25:
                            from rebirth.contract.notes import BUSY, Note

                            profile = dataclasses.replace(profile, noise=(Note(BUSY, "the device was busy"),))
                        when = (begin + datetime.timedelta(days=number)).isoformat(timespec="seconds")
                        run = StoredRun.of("", number, profile, f"phone{phone}", f"{number:040x}", when,
                                           "last" if number == runs else None)
                        own = number >= runs - 1 or number == baseline
                        store._insert(run, pack(profile) if own else copy)
                        if number == baseline:
                            members["main"].append((run.fingerprint, number, None))
                        stored += 1
            store._execute("INSERT INTO baselines (name, fingerprint, number, saved) "
                           "SELECT 'main', fingerprint, number, ? FROM runs WHERE number = ?",
                           (datetime.datetime.now(datetime.UTC).isoformat(), baseline))
    return stored, time.perf_counter() - start


def timed(command: list[str], repeats: int, **options) -> tuple[list[float], subprocess.CompletedProcess]:
    seconds, done = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, **options)
        seconds.append(time.perf_counter() - start)
    assert done is not None
    return seconds, done


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phones", type=int, default=20)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--runs", type=int, default=500, help="runs of each phone and model (default: 500)")
    parser.add_argument("--repeats", type=int, default=3, help="times each command is run (default: 3)")
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--writes", type=int, default=200, help="runs each writer stores (default: 200)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "store.json")
    args = parser.parse_args(argv)
    rebirth = [sys.executable, "-m", "rebirth"]
    with tempfile.TemporaryDirectory(prefix="rebirth-store-bench-") as scratch:
        folder = Path(scratch) / "store"
        stored, build_s = build(folder, args.phones, args.models, args.runs)
        size = (folder / "rebirth.sqlite").stat().st_size
        print(f"built {stored} runs in {build_s:.0f} s: {size / 2**20:.0f} MiB")
        results: dict = {"runs": stored, "phones": args.phones, "models": args.models, "runs_per_series": args.runs,
                         "build_s": build_s, "database_bytes": size, "commands": {}}
        startup, _ = timed([*rebirth, "--help"], args.repeats)
        results["commands"]["rebirth --help (start-up alone)"] = {"seconds": startup}
        page = Path(scratch) / "history.html"
        for name, command in (
                ("rebirth results list", ["results", "list", "--store", str(folder)]),
                ("rebirth results list --every", ["results", "list", "--every", "--store", str(folder)]),
                ("rebirth regress --baseline main", ["regress", "--baseline", "main", "--store", str(folder),
                                                     "--fail", "p50:5%"]),
                ("rebirth history -o history.html", ["history", "--store", str(folder), "-o", str(page)])):
            seconds, done = timed([*rebirth, *command], args.repeats)
            results["commands"][name] = {"seconds": seconds, "exit": done.returncode,
                                         "lines": len(done.stdout.splitlines()), "stderr": done.stderr[-300:]}
            print(f"{name}: median {statistics.median(seconds):.2f} s (exit {done.returncode}, "
                  f"{len(done.stdout.splitlines())} lines)")
        results["history_page_bytes"] = page.stat().st_size if page.exists() else None
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        _, done = timed([sys.executable, "-c", WRITER, str(folder), str(args.writes), "0"], 1, env=env, cwd=ROOT)
        single = [float(value) for value in done.stdout.split()]
        results["one_writer"] = {"runs": len(single), "median_ms": 1000 * statistics.median(single),
                                 "p95_ms": 1000 * sorted(single)[int(0.95 * len(single))]}
        print(f"store one run (alone): median {results['one_writer']['median_ms']:.1f} ms")
        before = stored + len(single)
        start = time.perf_counter()
        writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(args.writes), str(index + 1)],
                                    stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
                   for index in range(args.writers)]
        outputs = [writer.communicate()[0] for writer in writers]
        wall = time.perf_counter() - start
        every = [float(value) for output in outputs for value in output.split()]
        from rebirth.results import open_store

        with open_store(folder) as store:
            after = store.count()
            numbers = store._query("SELECT fingerprint, COUNT(*), COUNT(DISTINCT number), MIN(number), MAX(number) "
                                   "FROM runs WHERE commit_sha = 'bench' GROUP BY fingerprint")
        whole = all(count == distinct == high - low + 1 for _, count, distinct, low, high in numbers)
        results["concurrent_writers"] = {
            "writers": args.writers, "runs_each": args.writes, "wall_s": wall, "stored": after - before,
            "expected": args.writers * args.writes, "numbers_distinct_and_gapless": whole,
            "exit_codes": [writer.returncode for writer in writers],
            "median_ms": 1000 * statistics.median(every), "p95_ms": 1000 * sorted(every)[int(0.95 * len(every))]}
        print(f"{args.writers} writers x {args.writes}: {after - before} of {args.writers * args.writes} stored in "
              f"{wall:.1f} s, numbers distinct and gapless: {whole}; per run median "
              f"{results['concurrent_writers']['median_ms']:.1f} ms")
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
