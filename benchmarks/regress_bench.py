"""Detection benchmark of the regression check; results go to benchmarks/results/regress.json.

    python benchmarks/regress_bench.py [--record] [--trials N]

1. record (``--record``, or when benchmarks/results/regress_samples.json is missing): profile
   zoo:googlenet-small on this host repeatedly, a pause between profiles, once with the default
   threads and once with one thread, and keep every profile's raw latency samples, so the trials
   can be re-run without re-recording;
2. trials: judge a window of n consecutive samples of one recorded profile (the baseline) against a
   window of a *different* profile (the candidate: two runs on different occasions) multiplied by
   a slowdown of 0%, 3%, 5% or 10%, with the check ``p50:5%``, and count regressions, noisy and
   passing verdicts. The run-to-run noise given to the check is either none (the samples alone),
   the default assumption (``reports.regress.RUN_NOISE``) or measured with
   ``reports.regress.measure_run_noise`` on a window of every other profile of the recording (the
   baseline's history, leaving out the two profiles under test). A last scenario
   takes both windows from the same profile (back-to-back runs in one session).

Goals: a 10% slowdown caught in >= 95% of trials, an unchanged run flagged in <= 1%.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Optional

import numpy
from common import ROOT, write_results

from rebirth.contract.profile import Latency, Profile
from rebirth.reports import regress
from tests.synthetic import synthetic_profile

MODEL = "zoo:googlenet-small"
SAMPLES_FILE = ROOT / "benchmarks" / "results" / "regress_samples.json"
CHECK = "p50:5%"
SLOWDOWNS = (1.0, 1.03, 1.05, 1.10)
SAMPLE_COUNTS = (20, 50)
THREADS = (None, 1)
DIFFERENT_RUNS, SAME_SESSION = "different runs", "same session"
NONE, ASSUMED, MEASURED = "none", "assumed", "measured"


def record(profiles: int, iterations: int, pause_s: float, threads: Optional[int]) -> dict:
    """Profile ``MODEL`` ``profiles`` times and keep each run's raw latency samples."""
    from rebirth.profiler import ProfileOptions
    from rebirth.usecases.profiling import profile

    runs = []
    for index in range(profiles):
        if index:
            time.sleep(pause_s)
        result = profile(MODEL, ProfileOptions(iterations=iterations, threads=threads))
        runs.append({"created": result.created, "p50_ms": result.latency.p50, "cv": result.latency.cv,
                     "raw_ms": list(result.latency.raw)})
        print(json.dumps({key: value for key, value in runs[-1].items() if key != "raw_ms"}), flush=True)
    return {"model": MODEL, "device": "local", "threads": threads, "iterations": iterations, "warmup": 3,
            "pause_s": pause_s, "profiles": runs}


def describe_recording(recording: dict) -> dict:
    """How noisy a recording is: within one profile and from one profile to the next."""
    runs = [numpy.asarray(run["raw_ms"]) for run in recording["profiles"]]
    p50s = numpy.array([numpy.median(run) for run in runs])
    return {"threads": recording["threads"], "profiles": len(runs), "iterations": recording["iterations"],
            "p50_ms_range": [float(p50s.min()), float(p50s.max())],
            "run_to_run_sd_of_log_p50": float(numpy.std(numpy.log(p50s), ddof=1)),
            "median_within_run_cv": float(numpy.median([run["cv"] for run in recording["profiles"]]))}


class Trials:
    """Pairs of windows of recorded samples judged with the check, for one recording."""

    def __init__(self, recording: dict, seed: int) -> None:
        self.runs = [numpy.asarray(run["raw_ms"]) for run in recording["profiles"]]
        self.template = synthetic_profile(samples=recording["iterations"])
        self.generator = numpy.random.default_rng(seed)
        self.history_noise: dict[tuple[int, int], float] = {}

    def count(self, samples: int, scenario: str, noise: str, slowdown: float, trials: int) -> dict[str, float]:
        """The share of each status over ``trials`` judged pairs."""
        statuses = [self.judge_one(samples, scenario, noise, slowdown) for _ in range(trials)]
        return {status: statuses.count(status) / trials for status in (regress.REGRESSION, regress.NOISY,
                                                                       regress.PASS, regress.IMPROVEMENT)}

    def judge_one(self, samples: int, scenario: str, noise: str, slowdown: float) -> str:
        first, second = self.generator.choice(len(self.runs), 2, replace=False)
        if scenario == SAME_SESSION:
            baseline, candidate = self.same_session_windows(self.runs[first], samples)
        else:
            baseline, candidate = self.window(self.runs[first], samples), self.window(self.runs[second], samples)
        verdict = regress.judge(self.profile(baseline), self.profile(candidate * slowdown), [CHECK],
                                run_noise=self.run_noise(noise, samples, first, second))
        return verdict.results[0].status

    def window(self, run: numpy.ndarray, samples: int) -> numpy.ndarray:
        start = self.generator.integers(0, len(run) - samples + 1)
        return run[start:start + samples]

    def same_session_windows(self, run: numpy.ndarray, samples: int) -> tuple[numpy.ndarray, numpy.ndarray]:
        """Two non-overlapping windows of one run, in either order."""
        gap = self.generator.integers(0, len(run) - 2 * samples + 1)
        start = self.generator.integers(0, len(run) - 2 * samples - gap + 1)
        first, second = run[start:start + samples], run[start + samples + gap:start + 2 * samples + gap]
        return (first, second) if self.generator.random() < 0.5 else (second, first)

    def run_noise(self, noise: str, samples: int, first: int, second: int) -> float:
        """None, the assumed default, or measured on a window of ``samples`` of every other profile (the
        baseline's history, made with the same iteration count as the runs judged)."""
        if noise == NONE:
            return 0.0
        if noise == ASSUMED:
            return regress.RUN_NOISE
        key = (min(first, second), max(first, second))
        if key not in self.history_noise:
            history = [self.profile(self.window(run, samples)) for index, run in enumerate(self.runs)
                       if index not in key]
            self.history_noise[key] = regress.measure_run_noise(history)
        return self.history_noise[key]

    def profile(self, samples: numpy.ndarray) -> Profile:
        return dataclasses.replace(self.template, latency=Latency.from_samples(samples.tolist()))


def detection(recordings: list[dict], trials: int) -> list[dict]:
    """Every recording x sample count x scenario: the share of each status per injected slowdown."""
    rows = []
    plans = [(DIFFERENT_RUNS, NONE), (DIFFERENT_RUNS, ASSUMED), (DIFFERENT_RUNS, MEASURED), (SAME_SESSION, ASSUMED)]
    for recording in recordings:
        for samples in SAMPLE_COUNTS:
            for scenario, noise in plans:
                if scenario == SAME_SESSION and 2 * samples > recording["iterations"]:
                    continue
                bench = Trials(recording, seed=0)
                counts = {f"{slowdown - 1:.0%}": bench.count(samples, scenario, noise, slowdown, trials)
                          for slowdown in SLOWDOWNS}
                rows.append(summarize(recording["threads"], samples, scenario, noise, trials, counts))
                print(json.dumps({key: rows[-1][key] for key in ("threads", "samples", "scenario", "run_noise",
                                                                  "caught_10pct", "false_alarms", "noisy_unchanged")}),
                      flush=True)
    return rows


def summarize(threads: Optional[int], samples: int, scenario: str, noise: str, trials: int,
              counts: dict[str, dict[str, float]]) -> dict:
    caught, false_alarms = counts["10%"][regress.REGRESSION], counts["0%"][regress.REGRESSION]
    return {"threads": threads, "samples": samples, "scenario": scenario,
            "run_noise": {NONE: 0.0, ASSUMED: regress.RUN_NOISE, MEASURED: "measured on the other profiles"}[noise],
            "trials_per_slowdown": trials, "by_slowdown": counts, "caught_10pct": caught,
            "false_alarms": false_alarms, "noisy_unchanged": counts["0%"][regress.NOISY],
            "noisy_10pct": counts["10%"][regress.NOISY], "goals_met": caught >= 0.95 and false_alarms <= 0.01}


def load_or_record(again: bool, profiles: int, iterations: int, pause_s: float) -> list[dict]:
    if again or not SAMPLES_FILE.exists():
        recordings = [record(profiles, iterations, pause_s, threads) for threads in THREADS]
        SAMPLES_FILE.write_text(json.dumps({"model": MODEL, "date": time.strftime("%Y-%m-%d"),
                                            "recordings": recordings}) + "\n")
    return json.loads(SAMPLES_FILE.read_text())["recordings"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--record", action="store_true", help="record new samples (a few minutes)")
    parser.add_argument("--profiles", type=int, default=18, help="profiles per recording")
    parser.add_argument("--iterations", type=int, default=100, help="samples per profile")
    parser.add_argument("--pause", type=float, default=6.0, help="seconds between profiles")
    parser.add_argument("--trials", type=int, default=1000, help="trials per slowdown and configuration")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "regress.json")
    args = parser.parse_args()
    recordings = load_or_record(args.record, args.profiles, args.iterations, args.pause)
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "model": MODEL,
        "check": CHECK,
        "confidence": regress.CONFIDENCE,
        "samples_file": str(SAMPLES_FILE.relative_to(ROOT)),
        "recordings": [describe_recording(recording) for recording in recordings],
        "goals": {"caught_10pct": ">= 0.95", "false_alarms": "<= 0.01"},
        "detection": detection(recordings, args.trials),
    }
    write_results(args.out, results)


if __name__ == "__main__":
    main()
