"""Judging regression checks (``rebirth.contract.checks``) on measurements: two stored runs, or two programs
measured side by side. Whatever measured it, a latency check is decided by ``checks.decide``.

From pytest::

    from rebirth import Profile, assert_no_regression

    def test_googlenet_on_pixel_did_not_regress():
        baseline = Profile.load("baselines/googlenet-pixel8.json")
        current = Profile.load("results/googlenet-pixel8.json")
        assert_no_regression(baseline, current, "p50:5%", "peak_rss:3%")
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from typing import Optional

import numpy

from rebirth.contract import checks
from rebirth.contract.checks import (
    LATENCY,
    MEMORY,
    UNDECIDED,
    UNKNOWN,
    Check,
    CheckResult,
    RunNoise,
    Verdict,
    describe,
    parse_checks,
    threshold_result,
)
from rebirth.contract.errors import InputError
from rebirth.contract.paired import PairedComparison
from rebirth.contract.profile import Profile
from rebirth.profiler import significance

RUN_NOISE = 0.01
"""Relative run-to-run noise of a latency statistic assumed when none is given or learned (1%: a pinned
device at a steady temperature). ``measure_run_noise`` measures it from repeated runs."""
MIN_SAMPLES = 5
"""Fewer latency samples in either run and a latency check is undecided, whatever the change."""
STATISTICS: dict[str, significance.Statistic] = {
    "p10": significance.percentile_statistic(10),
    "p50": significance.percentile_statistic(50),
    "p90": significance.percentile_statistic(90),
    "mean": lambda values: numpy.mean(values, axis=-1),
    "trimmed_mean": significance.trimmed_mean_statistic(0.1),
}


def judge(baseline: Profile, current: Profile, wanted: Iterable[Check | str] = (),
          run_noise: RunNoise | float = RUN_NOISE) -> Verdict:
    """Judge ``current`` against ``baseline`` (two stored runs) with the checks (``DEFAULT_CHECKS`` when none).

    Args:
        run_noise: the relative run-to-run noise of a latency statistic, or how it was found.

    Raises:
        InputError: a check string is malformed.
    """
    noise = run_noise if isinstance(run_noise, RunNoise) else RunNoise(run_noise, "given")
    judges: dict[str, Callable[[Check], CheckResult]] = {
        LATENCY: lambda check: judge_latency(check, baseline, current, noise),
        MEMORY: lambda check: judge_memory(check, baseline, current),
    }
    results = tuple(judges.get(check.kind, lambda c: judge_share(c, baseline, current))(check)
                    for check in parse_checks(wanted))
    return Verdict(device=current.device.name, model=model_name(current), results=results)


def judge_latency(check: Check, baseline: Profile, current: Profile, noise: RunNoise) -> CheckResult:
    """A latency check of two stored runs: the interval of the ratio of their statistic (a block bootstrap of
    each run's samples plus the run-to-run noise), decided by ``checks.decide``."""
    before, after = baseline.latency.raw, current.latency.raw
    fewest = min(len(before), len(after))
    if not fewest:
        side = "baseline" if not before else "current run"
        return CheckResult(check, UNKNOWN, "no_samples", detail=(("side", side),))
    if fewest < MIN_SAMPLES:
        return CheckResult(check, UNDECIDED, "few_samples", detail=(("samples", str(fewest)),
                                                                    ("needed", str(MIN_SAMPLES))), noise=noise)
    test = significance.ratio_test(before, after, STATISTICS[check.metric], checks.CONFIDENCE, noise.value)
    status, code = checks.decide(test.low, test.high, check.amount)
    flags = flagged(baseline, current)
    detail: tuple[tuple[str, str], ...] = ()
    if flags:  # the interval is shown, but a run whose latency may not be the model's alone decides nothing
        status, code, detail = UNDECIDED, "flagged_run", (("flags", flags),)
    return CheckResult(check, status, code, before=test.before, after=test.after, change=test.ratio - 1,
                       low=test.low - 1, high=test.high - 1, p_value=test.p_value, detail=detail, noise=noise)


def flagged(baseline: Profile, current: Profile) -> str:
    """Why the latency of ``baseline`` or ``current`` may not be the model's alone (the noise its profile was
    flagged with: a busy device, a wide spread, clocks that moved, throttling), each run named; empty when
    neither was flagged."""
    return "; ".join(f"the {side} was flagged: {note.text}" for side, profile in (("baseline", baseline),
                                                                                  ("current run", current))
                     for note in profile.noise)


def judge_paired(comparison: PairedComparison, baseline: Profile, candidate: Profile,
                 wanted: Iterable[Check | str] = ()) -> Verdict:
    """A candidate program against its baseline from a paired comparison on one device (``rebirth regress
    --ab``): the latency check from the pairs' interval, decided by ``checks.decide``; memory and the non-tensor
    share from the traced run of each side.

    Raises:
        InputError: a latency check other than the statistic the pairs compare (p50).
    """
    results = []
    for check in parse_checks(wanted):
        if check.kind == LATENCY:
            results.append(_paired_latency(check, comparison))
        elif check.kind == MEMORY:
            results.append(judge_memory(check, baseline, candidate))
        else:
            results.append(judge_share(check, baseline, candidate))
    return Verdict(device=comparison.device, model=model_name(candidate), results=tuple(results))


def _paired_latency(check: Check, comparison: PairedComparison) -> CheckResult:
    if check.metric != comparison.statistic:
        raise InputError(f"bad check {check}: measured side by side, rebirth compares {comparison.statistic}, "
                         f"e.g. {comparison.statistic}:5%")
    a, b = ([run.latency_ms for run in comparison.side(side)] for side in ("a", "b"))
    status, code = checks.decide(comparison.low, comparison.high, check.amount)
    return CheckResult(check, status, code, before=statistics.median(a), after=statistics.median(b),
                       change=comparison.ratio - 1, low=comparison.low - 1, high=comparison.high - 1,
                       noise=RunNoise(0.0, "paired"), measured=f"{comparison.how}: {comparison.reason}")


def judge_memory(check: Check, baseline: Profile, current: Profile) -> CheckResult:
    """A memory check: one number per run, the threshold alone decides."""
    before, after, what = _memory_values(check.metric, baseline, current)
    if before is None or after is None:
        side = "baseline" if before is None else "current run"
        return CheckResult(check, UNKNOWN, "no_value", before, after, detail=(("side", side), ("what", what)))
    if before == 0:
        return CheckResult(check, UNKNOWN, "zero_baseline", before, after, detail=(("what", what),))
    return threshold_result(check, before, after, after / before - 1, what)


def _memory_values(metric: str, baseline: Profile, current: Profile) -> tuple[Optional[float], Optional[float], str]:
    """(before, after, what they are): model RSS above the idle runner when both runs have it, else peak RSS."""
    if metric == "planned":
        return baseline.memory.planned_bytes, current.memory.planned_bytes, "planned memory"
    model_rss = baseline.memory.model_rss_bytes, current.memory.model_rss_bytes
    if None not in model_rss:
        return *model_rss, "model RSS above the idle runner"
    return baseline.memory.peak_rss_bytes, current.memory.peak_rss_bytes, "peak RSS"


def judge_share(check: Check, baseline: Profile, current: Profile) -> CheckResult:
    """The non-tensor share, in points: the threshold alone decides."""
    before, after = baseline.summary.non_tensor_share * 100, current.summary.non_tensor_share * 100
    return threshold_result(check, before, after, after - before, "non-tensor share of the op time")


def measure_run_noise(runs: Sequence[Profile], metric: str = "p50") -> float:
    """Relative run-to-run noise of a latency metric over repeated runs (at least two) of one model on one device."""
    return significance.run_noise_of([run.latency.raw for run in runs], STATISTICS[metric])


def spread_of(values: Sequence[float]) -> float:
    """Relative run-to-run noise from one statistic (say each run's p50) of repeated runs (at least two): the
    standard deviation of its log."""
    return significance.log_spread(values)


def assert_no_regression(baseline: Profile, current: Profile, *wanted: Check | str,
                         run_noise: float = RUN_NOISE) -> Verdict:
    """``judge`` for tests: raise AssertionError naming every regressed check, else return the verdict.

    Undecided and unknown checks do not fail the assertion; inspect the returned verdict for them.
    """
    verdict = judge(baseline, current, wanted, run_noise=run_noise)
    if verdict.regressions:
        lines = "\n".join(f"  {describe(result)}" for result in verdict.regressions)
        raise AssertionError(f"{verdict.model} on {verdict.device} regressed:\n{lines}")
    return verdict


def model_name(profile: Profile) -> str:
    """How a verdict names the model of a profile: where it came from, else its path."""
    return profile.model.source or profile.model.path
