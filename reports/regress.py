"""Regression checks: is a new run of a model slower or bigger than its baseline run?

A check is parsed from a string ``METRIC:AMOUNT`` and judged on a (baseline, current) pair of
Profiles; every check gives a ``CheckResult`` and one device x model pair a ``Verdict``.

Metrics and their thresholds:

- latency ``p10``, ``p50``, ``p90``, ``mean``, ``trimmed_mean``: relative, ``p50:5%``. A regression
  must exceed the threshold *and* be significant on the raw samples (see ``reports.significance``:
  block bootstrap within each run plus the run-to-run noise ``run_noise``).
- memory ``peak_rss`` (the model's RSS above the idle runner, or the whole peak RSS when a run
  lacks the idle baseline) and ``planned`` (alias ``planned_memory``, bytes planned in the .pte):
  relative, ``peak_rss:3%``, ``planned:0%``. One number per run: the threshold alone decides.
- ``non_tensor_share``: absolute percentage points, ``non_tensor_share:+2pt``.

Without any check, ``DEFAULT_CHECKS`` (``p50:5%``, ``peak_rss:5%``, ``non_tensor_share:+2pt``) apply.

Statuses: ``pass``; ``improvement`` (better by more than the threshold, significantly); ``regression``;
``noisy`` (the interval of the change holds both "no change" and "over the threshold", or too few
samples: neither pass nor regression can be claimed); ``unknown`` (a value is missing); a
verdict of a run that did not happen at all is ``failed``. ``exit_code`` turns verdicts into the
CLI's exit status.

From pytest::

    from rebirth.contract.profile import Profile
    from rebirth.reports.regress import assert_no_regression

    def test_googlenet_on_pixel_did_not_regress():
        baseline = Profile.load("baselines/googlenet-pixel8.json")
        current = Profile.load("results/googlenet-pixel8.json")
        assert_no_regression(baseline, current, "p50:5%", "peak_rss:3%")
"""

from __future__ import annotations

import dataclasses
import math
import re
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy

from rebirth.contract.errors import ExitStatus, InputError
from rebirth.contract.paired import IMPROVEMENT as PAIRED_IMPROVEMENT
from rebirth.contract.paired import PASS as PAIRED_PASS
from rebirth.contract.paired import REGRESSION as PAIRED_REGRESSION
from rebirth.contract.paired import UNDECIDED, PairedComparison
from rebirth.contract.profile import Profile
from rebirth.reports import significance
from rebirth.reports.units import pct

PASS, IMPROVEMENT, REGRESSION = "pass", "improvement", "regression"
NOISY, UNKNOWN, FAILED = "noisy", "unknown", "failed"
STATUSES = (PASS, IMPROVEMENT, REGRESSION, NOISY, UNKNOWN, FAILED)
_SEVERITY = (FAILED, REGRESSION, NOISY, UNKNOWN, IMPROVEMENT, PASS)
"""A verdict's status is the first of these that any of its checks has."""

LATENCY, MEMORY, SHARE = "latency", "memory", "share"
RELATIVE, POINTS = "%", "pt"

DEFAULT_CHECKS = ("p50:5%", "peak_rss:5%", "non_tensor_share:+2pt")
CONFIDENCE = 0.95
"""Coverage of the two-sided interval; a slowdown is significant when the interval excludes 1 (p < 2.5%)."""
RUN_NOISE = 0.01
"""Assumed relative run-to-run noise of a latency statistic (1%: a pinned device at a steady
temperature). Measure it from repeated baseline runs with ``measure_run_noise`` and pass it to ``judge``."""
MIN_SAMPLES = 5
"""Fewer latency samples in either run and a latency check is noisy, whatever the change."""


@dataclass(frozen=True)
class Metric:
    """Something a check can watch: its kind decides how it is read and judged."""

    name: str
    kind: str
    unit: str
    statistic: Optional[significance.Statistic] = None
    """How a latency metric is computed from samples (latency metrics only)."""

    def latency_statistic(self) -> significance.Statistic:
        if self.statistic is None:
            raise ValueError(f"{self.name} is not a latency metric")
        return self.statistic


METRICS = {metric.name: metric for metric in (
    Metric("p10", LATENCY, RELATIVE, significance.percentile_statistic(10)),
    Metric("p50", LATENCY, RELATIVE, significance.percentile_statistic(50)),
    Metric("p90", LATENCY, RELATIVE, significance.percentile_statistic(90)),
    Metric("mean", LATENCY, RELATIVE, lambda values: numpy.mean(values, axis=-1)),
    Metric("trimmed_mean", LATENCY, RELATIVE, significance.trimmed_mean_statistic(0.1)),
    Metric("peak_rss", MEMORY, RELATIVE),
    Metric("planned", MEMORY, RELATIVE),
    Metric("non_tensor_share", SHARE, POINTS),
)}
ALIASES = {"planned_memory": "planned"}
_FORM = re.compile(r"(?P<metric>[a-z_0-9]+):\+?(?P<amount>\d+(?:\.\d*)?|\.\d+)(?P<unit>%|pt)", re.IGNORECASE)


@dataclass(frozen=True)
class Check:
    """A threshold on one metric: ``amount`` is a fraction for ``%`` (0.05 = 5%), else points."""

    metric: str
    amount: float
    unit: str

    def __str__(self) -> str:
        shown = self.amount * 100 if self.unit == RELATIVE else self.amount
        return f"{self.metric}:{'' if self.unit == RELATIVE else '+'}{shown:g}{self.unit}"

    @property
    def kind(self) -> str:
        """latency, memory or share."""
        return METRICS[self.metric].kind


@dataclass(frozen=True)
class CheckResult:
    """One check judged on one (baseline, current) pair.

    ``before`` and ``after`` are in the metric's unit (ms, bytes, percent of op time for shares).
    ``change`` is relative (0.1 = 10% more) for ``%`` checks and in points for ``pt`` checks;
    ``low`` and ``high`` bound it (latency only), ``p_value`` is the one-sided p-value of the slowdown.
    """

    check: Check
    status: str
    before: Optional[float] = None
    after: Optional[float] = None
    change: Optional[float] = None
    low: Optional[float] = None
    high: Optional[float] = None
    p_value: Optional[float] = None
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    """All checks of one model on one device, or the error of a run that failed."""

    device: str
    model: str
    results: tuple[CheckResult, ...] = ()
    error: Optional[str] = None

    @property
    def status(self) -> str:
        """``failed`` for a failed run, else the most severe status of its checks."""
        if self.error is not None:
            return FAILED
        present = {result.status for result in self.results}
        return next((status for status in _SEVERITY if status in present), PASS)

    @property
    def regressions(self) -> tuple[CheckResult, ...]:
        """The checks that regressed."""
        return tuple(result for result in self.results if result.status == REGRESSION)


def parse_check(text: str) -> Check:
    """Parse ``METRIC:AMOUNT`` such as ``p50:5%``, ``peak_rss:3%`` or ``non_tensor_share:+2pt``.

    Raises:
        InputError: an unknown metric, a malformed amount or the wrong unit for the metric.
    """
    match = _FORM.fullmatch(text.strip().replace(" ", ""))
    name = ALIASES.get(match["metric"].lower(), match["metric"].lower()) if match else None
    if match is None or name not in METRICS:
        raise InputError(f"bad check {text!r}: expected METRIC:AMOUNT with METRIC one of "
                         f"{', '.join([*METRICS, *ALIASES])}, e.g. p50:5%, peak_rss:3%, non_tensor_share:+2pt")
    unit, metric = match["unit"].lower(), METRICS[name]
    if unit != metric.unit:
        example = "non_tensor_share:+2pt" if metric.unit == POINTS else f"{name}:5%"
        raise InputError(f"bad check {text!r}: {name} takes {'points' if metric.unit == POINTS else 'a percentage'}, "
                         f"e.g. {example}")
    amount = float(match["amount"])
    return Check(name, amount / 100 if unit == RELATIVE else amount, unit)


def parse_checks(texts: Iterable[str] = ()) -> tuple[Check, ...]:
    """Parse every check; ``DEFAULT_CHECKS`` when there are none.

    Raises:
        InputError: a check string is malformed.
    """
    return tuple(map(parse_check, texts)) or tuple(map(parse_check, DEFAULT_CHECKS))


def judge(baseline: Profile, current: Profile, checks: Iterable[Check | str] = (),
          run_noise: float = RUN_NOISE, confidence: float = CONFIDENCE) -> Verdict:
    """Judge ``current`` against ``baseline`` with ``checks`` (``DEFAULT_CHECKS`` when empty).

    Args:
        baseline: the reference run of the model on the device.
        current: the run under test.
        checks: Check objects or strings for ``parse_check``.
        run_noise: relative run-to-run noise of a latency statistic (see ``measure_run_noise``).
        confidence: coverage of the latency interval.

    Raises:
        InputError: a check string is malformed.
    """
    parsed = tuple(parse_check(check) if isinstance(check, str) else check for check in checks) or parse_checks()
    judges: dict[str, Callable[[Check], CheckResult]] = {
        LATENCY: lambda check: judge_latency(check, baseline, current, run_noise, confidence),
        MEMORY: lambda check: judge_memory(check, baseline, current),
        SHARE: lambda check: judge_share(check, baseline, current),
    }
    return Verdict(device=current.device.name, model=_model_name(current),
                   results=tuple(judges[check.kind](check) for check in parsed))


def failed(device: str, model: str, error: str) -> Verdict:
    """The verdict of a run that did not produce a profile (unreachable device, runner crash)."""
    return Verdict(device=device, model=model, error=error)


def exit_code(verdicts: Sequence[Verdict]) -> ExitStatus:
    """The CLI's exit status: REGRESSION (1) when any check regressed; else NO_ANSWER (3) when any run
    failed or any check could not be judged (noisy, unknown); else OK. A regression wins because it is a
    finding about the model, whatever else went wrong. (USAGE, bad input, is raised before judging.)"""
    statuses = {verdict.status for verdict in verdicts}
    if REGRESSION in statuses:
        return ExitStatus.REGRESSION
    return ExitStatus.NO_ANSWER if statuses & {FAILED, NOISY, UNKNOWN} else ExitStatus.OK


def judge_against_baseline(store: Path, baseline: str, results: Sequence[Path] = (), checks: Iterable[str] = (),
                           run_noise: Optional[float] = None) -> list[Verdict]:
    """`rebirth regress`: every device and model of ``results`` (Profile files, stored runs or stores; by
    default the store's latest runs) judged against ``baseline`` (a saved baseline's name or folder, or a
    Profile file). A baseline device and model with no result is a failed run. The run-to-run noise of a
    device and model is ``run_noise`` if given, else learned from their other stored runs (at least
    ``MIN_HISTORY``), else assumed large (``UNKNOWN_RUN_NOISE``); each latency check says which.

    Raises:
        InputError: a bad check, baseline or result, or nothing to judge.
    """
    from rebirth.results import baseline_profiles, results_to_judge

    parsed = parse_checks(checks)
    reference = baseline_profiles(store, baseline)
    current = results_to_judge(results, store)
    verdicts = [_judge_stored(reference[key], profile, parsed, _noise_of(store, key, profile, run_noise))
                if key in reference
                else failed(profile.device.name, key[1], f"no baseline for this device and model in {baseline}")
                for key, profile in current]
    judged = {key for key, _ in current}
    verdicts += [failed(profile.device.name, key[1], "no result: the run failed or was not made")
                 for key, profile in reference.items() if key not in judged]
    if not verdicts:
        raise InputError("nothing to judge: no results and an empty baseline")
    return verdicts


MIN_HISTORY = 3
"""Stored runs of a device and model needed to learn their run-to-run noise."""
UNKNOWN_RUN_NOISE = 0.10
"""The run-to-run noise assumed until it can be learned: runs minutes apart on a busy farm drifted by ~10%."""


def _noise_of(store: Path, key: tuple[str, str], current: Profile, given: Optional[float]) -> tuple[float, str]:
    """The run-to-run noise to judge ``current`` with, and where it comes from."""
    if given is not None:
        return given, f"run-to-run noise {given:.1%} as given"
    from rebirth.results import list_runs

    history = [run.profile for run in list_runs(store) if run.key == key and run.profile != current]
    if len(history) < MIN_HISTORY:
        return UNKNOWN_RUN_NOISE, (f"run-to-run noise assumed {UNKNOWN_RUN_NOISE:.0%}: {len(history)} other stored "
                                   f"runs, {MIN_HISTORY} needed to learn it (rebirth regress --ab measures both "
                                   "side by side instead)")
    learned = max(RUN_NOISE, measure_run_noise(history))
    return learned, f"run-to-run noise {learned:.1%} learned from {len(history)} stored runs"


def _judge_stored(baseline: Profile, current: Profile, checks: tuple[Check, ...], noise: tuple[float, str]) -> Verdict:
    verdict = judge(baseline, current, checks, run_noise=noise[0])
    results = tuple(dataclasses.replace(result, reason="; ".join(filter(None, (result.reason, noise[1]))))
                    if result.check.kind == LATENCY else result for result in verdict.results)
    return dataclasses.replace(verdict, results=results)


def assert_no_regression(baseline: Profile, current: Profile, *checks: Check | str,
                         run_noise: float = RUN_NOISE) -> Verdict:
    """``judge`` for tests: raise AssertionError naming every regressed check, else return the verdict.

    Noisy and unknown checks do not fail the assertion; inspect the returned verdict for them.
    """
    verdict = judge(baseline, current, checks, run_noise=run_noise)
    if verdict.regressions:
        lines = "\n".join(f"  {describe(result)}" for result in verdict.regressions)
        raise AssertionError(f"{verdict.model} on {verdict.device} regressed:\n{lines}")
    return verdict


def judge_paired(comparison: PairedComparison, baseline: Profile, candidate: Profile,
                 checks: Iterable[Check | str] = ()) -> Verdict:
    """Judge a candidate program against its baseline from a paired comparison on one device (``rebirth
    regress --ab``): the latency check from the pairs' interval (undecided after the budget: noisy), memory
    and the non-tensor share from the runs of median latency of each side.

    Raises:
        InputError: a latency check other than p50 (the pairs compare p50s).
    """
    parsed = tuple(parse_check(check) if isinstance(check, str) else check for check in checks) or parse_checks()
    results = []
    for check in parsed:
        if check.kind == LATENCY:
            results.append(_paired_latency(check, comparison))
        elif check.kind == MEMORY:
            results.append(judge_memory(check, baseline, candidate))
        else:
            results.append(judge_share(check, baseline, candidate))
    return Verdict(device=comparison.device, model=_model_name(candidate), results=tuple(results))


_PAIRED_STATUS = {PAIRED_PASS: PASS, PAIRED_REGRESSION: REGRESSION, PAIRED_IMPROVEMENT: IMPROVEMENT,
                  UNDECIDED: NOISY}


def _paired_latency(check: Check, comparison: PairedComparison) -> CheckResult:
    if check.metric != comparison.statistic:
        raise InputError(f"bad check {check}: measured side by side, rebirth compares {comparison.statistic}, "
                         f"e.g. {comparison.statistic}:5%")
    a, b = ([run.latency_ms for run in comparison.side(side)] for side in ("a", "b"))
    reason = f"{comparison.how}: {comparison.reason}"
    return CheckResult(check, _PAIRED_STATUS[comparison.outcome], before=statistics.median(a),
                       after=statistics.median(b), change=comparison.ratio - 1, low=comparison.low - 1,
                       high=comparison.high - 1, reason=reason)


def measure_run_noise(runs: Sequence[Profile], metric: str = "p50") -> float:
    """Relative run-to-run noise of a latency metric over repeated runs (at least two) of one model on one device."""
    return significance.run_noise_of([run.latency.raw for run in runs], METRICS[metric].latency_statistic())


def describe(result: CheckResult) -> str:
    """One line: the check, its status, the values and the reason."""
    reason = f" ({result.reason})" if result.reason else ""
    return f"{result.check}: {result.status}, {format_change(result)}{reason}"


def format_change(result: CheckResult) -> str:
    """``+12.0% [+8.1%, +16.0%]``, ``+2.5pt`` or ``n/a``."""
    if result.change is None:
        return "n/a"
    if result.check.unit == POINTS:
        return f"{result.change:+.1f}pt"
    shown = _signed_pct(result.change)
    if result.low is None or result.high is None:
        return shown
    return f"{shown} [{_signed_pct(result.low)}, {_signed_pct(result.high)}]"


def judge_latency(check: Check, baseline: Profile, current: Profile, run_noise: float,
                  confidence: float) -> CheckResult:
    """A latency check: over the threshold and significant on the raw samples, or noisy."""
    before, after = baseline.latency.raw, current.latency.raw
    statistic = METRICS[check.metric].latency_statistic()
    fewest = min(len(before), len(after))
    if not fewest:
        side = "baseline" if not before else "current run"
        return CheckResult(check, UNKNOWN, reason=f"the {side} has no latency samples")
    if fewest < MIN_SAMPLES:
        return CheckResult(check, NOISY, reason=f"{fewest} latency samples, at least {MIN_SAMPLES} per run needed")
    test = significance.ratio_test(before, after, statistic, confidence, run_noise)
    status, reason = _latency_status(test, check.amount)
    return CheckResult(check, status, before=test.before, after=test.after,
                       change=test.ratio - 1, low=test.low - 1, high=test.high - 1, p_value=test.p_value,
                       reason=reason)


def _latency_status(test: significance.RatioTest, threshold: float) -> tuple[str, str]:
    limit = 1 + threshold
    if test.ratio > limit and test.low > 1:
        return REGRESSION, f"over {pct(threshold)}, p={test.p_value:.2g}"
    if test.low <= 1 < limit < test.high:
        return NOISY, (f"the {test.confidence:.0%} interval holds both no change and over {pct(threshold)} "
                       "(more --iterations per run narrow it)")
    if test.ratio < 1 - threshold and test.high < 1:
        return IMPROVEMENT, ""
    return PASS, ""


def judge_memory(check: Check, baseline: Profile, current: Profile) -> CheckResult:
    """A memory check: one number per run, the threshold alone decides."""
    before, after, what = _memory_values(check.metric, baseline, current)
    if before is None or after is None:
        side = "baseline" if before is None else "current run"
        return CheckResult(check, UNKNOWN, before, after, reason=f"the {side} has no {what}")
    if before == 0:
        return CheckResult(check, UNKNOWN, before, after, reason=f"the baseline's {what} is 0: no relative change")
    change = after / before - 1
    return CheckResult(check, _threshold_status(change, check.amount), before, after, change, reason=what)


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
    change = after - before
    return CheckResult(check, _threshold_status(change, check.amount), before, after, change)


def _threshold_status(change: float, threshold: float) -> str:
    if change > threshold:
        return REGRESSION
    return IMPROVEMENT if change < -threshold else PASS


def _signed_pct(fraction: float) -> str:
    return f"{fraction * 100:+.1f}%" if math.isfinite(fraction) else "n/a"


def _model_name(profile: Profile) -> str:
    return profile.model.source or profile.model.path
