"""Benchmark of farm runs on phones leased from STF; results go to benchmarks/results/stf.json.

    python benchmarks/stf_bench.py [--quick] [--phones 16]

`rebirth farm run MODEL --stf URL --count N` as a user types it (its own process), against the STF
stand-in of the tests (``tests/stf.py``: every request checked against STF 3.7.9's published API
description, fetched with npm) with 16 emulated phones behind it, each its own process as in
``farm_bench.py``, whose runner sleeps 200 ms per execution and hands back a real ETDump.

Measured:
- the wall time of runs on 1 and on 16 leased phones, alternating; goal: the median on 16 <= 1.3x
  the median on 1, start included. The ratio is also given without the command's start (``rebirth farm
  run --help``, measured apart) and from the first request to STF to the command's end;
- whether every lease was given back after every run: the stand-in's own list of held phones must be
  empty after each timed run, after each run interrupted with SIGINT at a random moment, and after
  the run that follows each run killed with SIGKILL at a random moment (a killed process gives
  nothing back; its leases are in rebirth's ledger, and the next run gives them back). STF's lease
  timeout, the last backstop, is not waited for here (30 minutes); a test checks it with a short one.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, write_results
from farm_bench import PhoneProcess

EXECUTION_MS = 200.0
WARMUP, ITERATIONS = 3, 20
TOKEN = "stf-bench-token"


class Farm:
    """The STF stand-in, its phones, and one farm run at a time against it."""

    def __init__(self, root: Path, phones: int):
        from tests.stf import StfDevice, StfStandIn, stf_api_description

        self.root = root
        self.processes = [PhoneProcess(root / f"phone{index}", root / "recordings", EXECUTION_MS)
                          for index in range(phones)]
        self.stf = StfStandIn(stf_api_description(), tokens={TOKEN: "ci@example.com"})
        self.stf.devices = {f"p{index:02d}": StfDevice(f"p{index:02d}", process.address, sdk="28")
                            for index, process in enumerate(self.processes)}
        self.first_request: list[float] = []
        self.stf.on_request = lambda method, path: self.first_request.append(time.perf_counter())
        self.stf.start()
        self.env = dict(os.environ, STF_TOKEN=TOKEN, REBIRTH_CACHE=str(root / "cache"), PYTHONUNBUFFERED="1")
        self.runs = 0

    def start(self, model: Path, count: int) -> tuple[subprocess.Popen, float]:
        self.runs += 1
        self.first_request.clear()
        command = [sys.executable, "-m", "rebirth", "farm", "run", str(model), "--stf", self.stf.url,
                   "--stf-select", "sdk>=28", "--count", str(count), "--warmup", str(WARMUP),
                   "--iterations", str(ITERATIONS), "--store", str(self.root / "store"), "-q"]
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        return process, start

    def phones_cpu_s(self) -> float:
        return sum(process.cpu_s() for process in self.processes)

    def run(self, model: Path, count: int) -> dict:
        """One whole run: its wall times, the CPU seconds of rebirth's process and of the emulated phones
        (which share this host's cores with it, as real phones would not), and the phones still leased."""
        phones_before, children_before = self.phones_cpu_s(), resource.getrusage(resource.RUSAGE_CHILDREN)
        process, start = self.start(model, count)
        _, err = process.communicate(timeout=600)
        end = time.perf_counter()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        if process.returncode != 0:
            raise RuntimeError(f"a farm run on {count} leased phones failed ({process.returncode}): {err[-2000:]}")
        return {"wall_s": end - start, "from_first_stf_request_s": end - self.first_request[0],
                "rebirth_cpu_s": (children.ru_utime + children.ru_stime
                                  - children_before.ru_utime - children_before.ru_stime),
                "phones_cpu_s": self.phones_cpu_s() - phones_before,
                "still_leased_after": self.stf.leased(), "stderr": err}

    def stop(self) -> None:
        self.stf.stop()
        for process in self.processes:
            process.stop()


def timed(farm: Farm, model: Path, phones: int, repeats: int) -> dict:
    """Alternate runs on 1 and on ``phones`` leased phones; median wall times and their ratios."""
    runs: dict[str, list[dict]] = {"1": [], str(phones): []}
    for index in range(repeats):
        for count in ((1, phones) if index % 2 == 0 else (phones, 1)):
            measured = farm.run(model, count)
            measured.pop("stderr")
            runs[str(count)].append(measured)
            print(f"{count:>2} phones: {measured['wall_s']:.2f} s, leased after: {measured['still_leased_after']}",
                  flush=True)
    median = {count: {key: statistics.median(run[key] for run in values) for key in values[0]
                      if key != "still_leased_after"}
              for count, values in runs.items()}
    return {"median": median, "all": runs,
            "wall_ratio": median[str(phones)]["wall_s"] / median["1"]["wall_s"],
            "wall_ratio_from_first_stf_request": (median[str(phones)]["from_first_stf_request_s"]
                                                  / median["1"]["from_first_stf_request_s"]),
            "goal": "wall_ratio <= 1.3"}


def command_start_s(repeats: int = 3) -> float:
    """Median seconds of ``rebirth farm run --help`` in a fresh process: Python's start and the command's
    imports, the part of every run that does not depend on the phones."""
    took = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rebirth", "farm", "run", "--help"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        took.append(time.perf_counter() - start)
    return statistics.median(took)


def interrupted(farm: Farm, model: Path, phones: int, sig: signal.Signals, times: int, shortest_s: float,
                rng: random.Random) -> list[dict]:
    """Runs on ``phones`` phones, each sent ``sig`` at a random moment: half of them in the first 2 s (the
    process starting, then leasing), half later while the phones run (up to 90% of the shortest run);
    for each, the leases held when it was sent and still held after it ended (and, after SIGKILL, after
    the next run)."""
    outcomes = []
    for index in range(times):
        at = rng.uniform(0.05, 2.0) if index % 2 == 0 else rng.uniform(2.0, 0.9 * shortest_s)
        process, start = farm.start(model, phones)
        time.sleep(max(0.0, at - (time.perf_counter() - start)))
        held_when_sent = len(farm.stf.leased())
        process.send_signal(sig)
        _, err = process.communicate(timeout=120)
        outcome = {"signal": sig.name, "sent_after_s": round(at, 2), "leases_held_when_sent": held_when_sent,
                   "exit_code": process.returncode, "still_leased_after_exit": farm.stf.leased(),
                   "traceback": "Traceback" in err}
        if sig == signal.SIGKILL:
            following = farm.run(model, phones)
            given_back = sum(1 for line in following["stderr"].splitlines()
                             if f"leased by rebirth process {process.pid} that is gone" in line
                             and line.startswith("released "))
            outcome.update(given_back_by_next_run=given_back,
                           still_leased_after_next_run=following["still_leased_after"])
        outcomes.append(outcome)
        print(outcome, flush=True)
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, results not written (a smoke run)")
    parser.add_argument("--phones", type=int, default=16)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/stf.json")
    args = parser.parse_args()
    from rebirth.models import ensure_pte, import_heavy, parse_spec

    import_heavy()
    model = ensure_pte(parse_spec(f"{ROOT / 'models/probe.py'}:probe"), "xnnpack").pte
    rng = random.Random(0)
    repeats, interrupts = (2, 2) if args.quick else (5, 10)
    with tempfile.TemporaryDirectory(prefix="rebirth-stf-bench-") as folder:
        farm = Farm(Path(folder), args.phones)
        try:
            first = farm.run(model, args.phones)  # pushes the model and records the runner once per phone
            measured = timed(farm, model, args.phones, repeats)
            shortest = min(run["wall_s"] for run in measured["all"][str(args.phones)])
            sigint = interrupted(farm, model, args.phones, signal.SIGINT, interrupts, shortest, rng)
            sigkill = interrupted(farm, model, args.phones, signal.SIGKILL, interrupts, shortest, rng)
            start_s = command_start_s()
            violations = list(farm.stf.violations)
            runs = farm.runs
        finally:
            farm.stop()
    cut_int = [o for o in sigint if o["exit_code"] != 0]  # interrupted, not ended before the signal came
    cut_kill = [o for o in sigkill if o["exit_code"] != 0]
    released = {
        "timed_runs": sum(not run["still_leased_after"] for values in measured["all"].values() for run in values),
        "timed_runs_of": sum(len(values) for values in measured["all"].values()),
        "sigint_runs": sum(not o["still_leased_after_exit"] for o in cut_int), "sigint_runs_of": len(cut_int),
        "sigint_runs_with_a_traceback": sum(o["traceback"] for o in cut_int),
        "sigkill_runs_given_back_by_the_next_run": sum(
            not o["still_leased_after_next_run"] and o["given_back_by_next_run"] == len(o["still_leased_after_exit"])
            for o in cut_kill),
        "sigkill_runs_of": len(cut_kill),
        "ended_before_the_signal": len(sigint) + len(sigkill) - len(cut_int) - len(cut_kill)}
    results = {"model": "models/probe.py:probe (xnnpack)", "phones": args.phones,
               "execution_ms_simulated": EXECUTION_MS, "warmup": WARMUP, "iterations": ITERATIONS,
               "first_run_s_with_push_and_recording": first["wall_s"], **measured,
               "command_start_s": start_s,
               "wall_ratio_without_the_command_start": ((measured["median"][str(args.phones)]["wall_s"] - start_s)
                                                        / (measured["median"]["1"]["wall_s"] - start_s)),
               "interrupted": {"sigint": sigint, "sigkill": sigkill}, "released": released,
               "rebirth_runs": runs, "api_violations": violations}
    print(f"ratio {measured['wall_ratio']:.3f} ({results['wall_ratio_without_the_command_start']:.3f} without the "
          f"command's start); released {released}; violations {len(violations)}", flush=True)
    if not args.quick:
        write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
