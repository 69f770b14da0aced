"""Two programs measured side by side on one device: alternating runs in blocks (A B, B A, A B, ...),
same device, settings and pinning, so that drift, load and heat hit both alike; blocks are added until
the question is answered (the ratio to a stated precision, or which side of a threshold it lies) or the
budget is spent, which is said plainly.

Each block gives one ratio of B's run statistic (p50) over A's; the estimate is their geometric mean
and its interval a t-interval over the blocks' log ratios, which holds the run-to-run noise itself.
Where the runner can (rebirth's native runner, ``--paired_model_path``), a block is one process that
alternates A's and B's executions, each after a warm-up of its own: drift then hits both within
milliseconds, and the noise between processes (memory layout, the scheduler) cancels too; elsewhere a
block is a run of each, back to back. Paired runs are timed from the runner's own per-execution lines
(no ETDump to read); after them one traced run of each side gives the per-layer profiles and memory.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from rebirth.contract import checks
from rebirth.contract.checks import IMPROVEMENT, PASS, REGRESSION, UNDECIDED
from rebirth.contract.device import DeviceInfo
from rebirth.contract.notes import CLOCKS_MOVED, THROTTLED, TOO_HOT
from rebirth.contract.paired import (
    DECIDED,
    Budget,
    PairedComparison,
    PairedRun,
    Question,
)
from rebirth.contract.profile import Latency, Profile
from rebirth.devices import Device, ProgressCallback
from rebirth.profiler.measure import ProfileOptions, Program, Stage, profile_program, time_pair, time_program
from rebirth.profiler.noise import noise_flags, sampled_clock_moved, sampled_throttled
from rebirth.profiler.timeline import Timelines

CONFIDENCE = 0.95
STATISTIC = "p50"
PRECISION = Question()
"""The default question: the latency ratio to ±2%."""
BUDGET = Budget()
MIN_RUN_MS = 200.0
"""A side's run shorter than this (a fast model at the default execution count) is lengthened from the second
block on, unless the user or the inventory set the count: a 6 ms run is within the machine's scheduling noise."""
MAX_ITERATIONS = 1000


@dataclass(frozen=True, kw_only=True)
class PairedResult:
    """The comparison, and one full profile of each side, traced after the pairs (for the report)."""

    comparison: PairedComparison
    a: Profile
    b: Profile


@dataclass(frozen=True)
class Interval:
    """B's latency over A's: the geometric mean of the blocks' ratios and its t-interval."""

    ratio: float
    low: float
    high: float


def interval(log_ratios: list[float], confidence: float = CONFIDENCE) -> Interval:
    """The geometric mean of the blocks' ratios and its t-interval (infinite with fewer than 2 blocks)."""
    from scipy.special import stdtrit  # Student's t quantile; scipy.stats.t is the same at twice the import time

    mean = statistics.fmean(log_ratios)
    if len(log_ratios) < 2:
        return Interval(math.exp(mean), 0.0, math.inf)
    quantile = float(stdtrit(len(log_ratios) - 1, (1 + confidence) / 2))
    half = quantile * statistics.stdev(log_ratios) / math.sqrt(len(log_ratios))
    return Interval(math.exp(mean), math.exp(mean - half), math.exp(mean + half))


def decide(estimate: Interval, question: Question) -> Optional[tuple[str, str]]:
    """``(outcome, reason)`` once the interval answers the question, else None. A threshold question is a
    latency check, decided by the checks' one rule (``checks.decide``)."""
    shown = f"{estimate.low:.3f}-{estimate.high:.3f}"
    if question.threshold is not None:
        outcome, _ = checks.decide(estimate.low, estimate.high, question.threshold)
        said = {REGRESSION: "slower by more than", IMPROVEMENT: "faster by more than", PASS: "not slower by more than"}
        return None if outcome == UNDECIDED else (outcome, f"B is {said[outcome]} {question.threshold:.0%}: "
                                                           f"latency ratio {shown}")
    if math.log(estimate.high / estimate.low) / 2 <= math.log(1 + question.precision):
        return DECIDED, f"the latency ratio is {estimate.ratio:.3f} ({shown}), within ±{question.precision:.0%}"
    return None


def compare_programs(a: Program, b: Program, device: Device, options: ProfileOptions,
                     question: Question = PRECISION, budget: Budget = BUDGET,
                     progress: Optional[ProgressCallback] = None, stage: Optional[Stage] = None,
                     clock: Callable[[], float] = time.monotonic, *, timelines: Optional[Timelines] = None,
                     roles: tuple[str, str] = ("A", "B")) -> PairedResult:
    """Run A and B alternately on ``device`` in blocks until ``question`` is answered or ``budget`` spent,
    then trace one run of each for the per-layer report (and for ``timelines``, labelled with ``roles``)."""
    comparison = measure_pairs(a, b, device, options, question, budget, progress, stage, clock)
    (stage or (lambda text: None))("tracing one run of each for the per-layer report")
    first = profile_program(a, device, options, progress, timelines=timelines, role=roles[0])
    second = profile_program(b, device, options, progress, timelines=timelines, role=roles[1])
    return PairedResult(comparison=with_energy(comparison, first, second), a=first, b=second)


def with_energy(comparison: PairedComparison, a: Profile, b: Profile) -> PairedComparison:
    """The comparison with B's energy per inference over A's, from each side's traced run: the ratio of the
    estimates, and the ratio of their intervals' far ends (a conservative interval), or why there is none."""
    ea, eb = a.energy, b.energy
    if ea is None or eb is None or ea.mj_per_inference is None or eb.mj_per_inference is None:
        why = next((e.why_not for e in (ea, eb) if e is not None and e.why_not), "not measured")
        return dataclasses.replace(comparison, energy_note=why)
    if not ea.mj_per_inference or not ea.low or eb.low is None or eb.high is None or ea.high is None:
        return dataclasses.replace(comparison, energy_note="A's energy per inference is not told apart from 0")
    return dataclasses.replace(comparison, energy_ratio=eb.mj_per_inference / ea.mj_per_inference,
                               energy_low=eb.low / ea.high, energy_high=eb.high / ea.low,
                               energy_note="one traced run of each side; the bounds are the ratio of the two "
                                           "95% intervals' far ends (wider than a 95% interval of the ratio)")


def measure_pairs(a: Program, b: Program, device: Device, options: ProfileOptions,
                  question: Question = PRECISION, budget: Budget = BUDGET,
                  progress: Optional[ProgressCallback] = None, stage: Optional[Stage] = None,
                  clock: Callable[[], float] = time.monotonic) -> PairedComparison:
    """The paired comparison alone: A and B alternately in blocks until ``question`` is answered or
    ``budget`` spent."""
    announce = stage or (lambda text: None)
    start = clock()
    runs: list[PairedRun] = []
    ratios: list[float] = []
    verdict: Optional[tuple[str, str]] = None
    together = device.pairs_in_process()
    block = 0
    while verdict is None and len(runs) + 2 <= budget.max_runs and clock() - start < budget.max_seconds:
        # A block's order follows the blocks kept (A B, B A, ...): a discarded block is re-run in its order. The
        # wait for the device to cool is bounded by what is left of the budget.
        left = budget.max_seconds - (clock() - start)
        block_options = dataclasses.replace(options, cool_wait_cap_s=left)
        pair = _block(a, b, block, device, block_options, progress, together, swap=len(ratios) % 2 == 1)
        reason = _invalid(pair) if options.thermal_gate else None
        if reason:
            runs += [dataclasses.replace(run, discarded=reason) for run in pair]
            announce(f"block {block + 1} discarded and re-run ({reason}: "
                     f"{'; '.join(note.text for run in pair for note in run.noise if note.code in DISCARDING)})")
            block += 1
            continue
        runs += [dataclasses.replace(run, discarded=None) for run in pair]
        ratios.append(math.log(runs[-1].latency_ms / runs[-2].latency_ms) * (1 if runs[-1].side == "b" else -1))
        estimate = interval(ratios)
        announce(f"block {block + 1} ({len(runs)} runs): B/A latency {estimate.ratio:.3f} "
                 f"({CONFIDENCE:.0%} CI {estimate.low:.3f}-{estimate.high:.3f})")
        if len(ratios) >= budget.min_blocks:
            verdict = decide(estimate, question)
        if len(ratios) == 1 and verdict is None:
            options = lengthened(options, device, max(run.latency_ms for run in runs[-2:]), announce)
        block += 1
    if not ratios:
        outcome = UNDECIDED
        reason = (f"undecided: every block was discarded ({len(runs)} runs in {clock() - start:.0f} s): "
                  + "; ".join(sorted({run.discarded for run in runs if run.discarded})))
        return PairedComparison(a.source, b.source, device.name, STATISTIC, question, budget, tuple(runs), 0,
                                1.0, 0.0, math.inf, CONFIDENCE, outcome, reason, clock() - start, together)
    estimate = interval(ratios)
    outcome, reason = verdict or (UNDECIDED, _undecided(estimate, question, len(runs), clock() - start, budget))
    left_out = len({run.block for run in runs if run.discarded})
    if left_out:
        reason += f" ({left_out} block{'s' if left_out != 1 else ''} discarded and re-run)"
    return PairedComparison(a.source, b.source, device.name, STATISTIC, question, budget, tuple(runs),
                            len(ratios), estimate.ratio, estimate.low, estimate.high, CONFIDENCE, outcome,
                            reason, clock() - start, together)


def lengthened(options: ProfileOptions, device: Device, slower_ms: float, announce: Stage) -> ProfileOptions:
    """``options`` with enough executions per run for a side to last ``MIN_RUN_MS``, when no one chose the count."""
    import dataclasses

    from rebirth.profiler.measure import DEFAULT_ITERATIONS

    if options.iterations is not None or device.defaults.iterations is not None or slower_ms <= 0:
        return options
    if slower_ms * DEFAULT_ITERATIONS >= MIN_RUN_MS:
        return options
    iterations = min(MAX_ITERATIONS, math.ceil(MIN_RUN_MS / slower_ms))
    announce(f"{iterations} executions per run from block 2: {DEFAULT_ITERATIONS} lasted "
             f"{slower_ms * DEFAULT_ITERATIONS:.0f} ms, within the machine's noise")
    return dataclasses.replace(options, iterations=iterations)


DISCARDING = {CLOCKS_MOVED: "clocks moved", THROTTLED: "throttled", TOO_HOT: "too hot"}
"""Noise that can leave a block out of the ratio: the device was not the same device for A and B."""


def _invalid(pair: list[PairedRun]) -> Optional[str]:
    """Why a block is discarded (``clocks moved``, ``throttled``, ``too hot``), or None: as each run said
    (``_discard_reason``)."""
    said = {reason for run in pair if run.discarded for reason in run.discarded.split(", ")}
    return ", ".join(reason for reason in DISCARDING.values() if reason in said) or None


def _discard_reason(described: DeviceInfo) -> Optional[str]:
    """Why this run would leave its block out: the clock sampled while it executed moved by more than 10%, or
    stayed below 90% of its core's maximum (not clocks read before and after the run, which a governor moves as
    the runner starts and ends), or it was too hot after the wait for a limit someone set (a learned limit may
    be off: then it is only a flag)."""
    reasons = set()
    if sampled_clock_moved(described):
        reasons.add(DISCARDING[CLOCKS_MOVED])
    if sampled_throttled(described):
        reasons.add(DISCARDING[THROTTLED])
    cooling = described.cooling
    if cooling is not None and not cooling.cooled and not cooling.source.startswith("learned"):
        reasons.add(DISCARDING[TOO_HOT])
    return ", ".join(reason for reason in DISCARDING.values() if reason in reasons) or None


def _block(a: Program, b: Program, block: int, device: Device, options: ProfileOptions,
           progress: Optional[ProgressCallback], together: bool, swap: bool = False) -> list[PairedRun]:
    """One block: A then B (B then A when ``swap``), in one process alternating their executions where the
    runner can, else as two runs back to back. The device is let cool before the block's first run only."""
    order = ("b", "a") if swap else ("a", "b")
    programs = {"a": a, "b": b}
    if together:
        first, second, result, described = time_pair(programs[order[0]], programs[order[1]], device, options,
                                                     progress)
        return [_paired_run(side, block, latency, None, described) for side, latency in zip(order, (first, second))]
    runs = []
    for index, side in enumerate(order):
        latency, result, described = time_program(programs[side], device, options, progress, gate=index == 0)
        runs.append(_paired_run(side, block, latency, result.peak_rss_bytes, described))
    return runs


def _paired_run(side: str, block: int, latency: Latency, peak_rss: Optional[int], described: DeviceInfo
                ) -> PairedRun:
    cooling = described.cooling
    noise = noise_flags(latency, described)
    return PairedRun(side, block, _statistic(latency), latency.cv, peak_rss, noise, described.temperature_c_start,
                     described.freq_khz_low, described.freq_khz_high, cooling.waited_s if cooling else 0.0,
                     _discard_reason(described))


def _statistic(latency: Latency) -> float:
    return latency.p50


def _undecided(estimate: Interval, question: Question, runs: int, seconds: float, budget: Budget) -> str:
    spent = f"{runs} runs in {seconds:.0f} s (budget {budget.max_runs} runs, {budget.max_seconds:.0f} s)"
    if question.threshold is not None:
        return (f"undecided after {spent}: the latency ratio {estimate.low:.3f}-{estimate.high:.3f} holds both "
                f"'not slower' and 'slower by more than {question.threshold:.0%}'")
    return (f"undecided after {spent}: the latency ratio {estimate.low:.3f}-{estimate.high:.3f} is wider than "
            f"±{question.precision:.0%}")
