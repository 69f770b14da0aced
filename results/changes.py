"""Change points of a series of run summaries (a device's and model's p50 over commits): steps and drifts.

The series is modelled in logarithms (a change is relative: 5% is 5% at 2 ms and at 200 ms) as segments, each a
straight line, fitted by ruptures' PELT (Killick, Fearnhead and Eckley 2012: the exact optimal segmentation for a
penalty per segment, in time linear in the series) with its least-squares linear cost. ruptures is maintained,
small, and gives the exact optimum rather than a heuristic; a line per segment (rather than a level) lets one
model catch both kinds of change: a *step* is a jump between two segments, a *drift* is a segment whose slope
stands out of the noise. The noise is the series' own, measured robustly from successive differences (so a step
or a drift does not inflate it), and every threshold is in units of it:

- a segment costs ``PENALTY`` times log(n) squared noise units, as the Bayesian information criterion's three
  parameters per segment (level, slope, where it starts) would, made stricter so that a flat series of 100 runs
  shows a false change point in fewer than 1 in 100 series (``benchmarks/changes_bench.py``: 6 in 1000);
- a break is a step when the jump between the two segments' lines, where they meet, is over ``STEP_Z`` standard
  errors; a segment drifts when its slope is over ``DRIFT_Z`` standard errors from flat.

Runs flagged noisy are left out by the caller: they measure the device's other work, not the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from rebirth.contract.history import DRIFT, STEP

MIN_SEGMENT = 5
"""The fewest runs a segment holds: a line needs a few points to tell its slope from noise."""
PENALTY = 5.0
"""A segment's cost, in log(n) squared noise units (see the module's doc)."""
STEP_Z = 4.5
DRIFT_Z = 4.5
NOISE_FLOOR = 1e-4
"""The least noise assumed (0.01%): a series of identical values has no noise to measure."""


@dataclass(frozen=True)
class Change:
    """A change found in a series: a step just before point ``start``, or a drift over points ``start`` to
    ``end`` (inclusive). ``size`` is relative: +0.05 is 5% slower after the step, or at the drift's end than at
    its start; ``z`` is how many standard errors it is from no change."""

    kind: str
    start: int
    end: int
    size: float
    z: float


def noise_of(logs: Sequence[float]) -> float:
    """The run-to-run noise of a series of logarithms: the median absolute successive difference, scaled to a
    standard deviation (a step or a slow drift moves few differences, so it barely moves the median)."""
    differences = sorted(abs(b - a) for a, b in pairwise(logs))
    if not differences:
        return NOISE_FLOOR
    middle = len(differences) // 2
    median = differences[middle] if len(differences) % 2 else (differences[middle - 1] + differences[middle]) / 2
    return max(median / (0.6745 * math.sqrt(2)), NOISE_FLOOR)


def find_changes(values: Sequence[float]) -> list[Change]:
    """The steps and drifts of ``values`` (positive numbers in run order), earliest first."""
    import numpy
    import ruptures

    values = [float(value) for value in values]
    if len(values) < MIN_SEGMENT or any(value <= 0 or not math.isfinite(value) for value in values):
        return []
    logs = numpy.log(numpy.asarray(values))
    noise = noise_of(list(logs))
    scaled = logs / noise
    index = numpy.arange(len(values), dtype=float)
    if len(values) >= 2 * MIN_SEGMENT:
        search = ruptures.Pelt(custom_cost=_linear_cost(), min_size=MIN_SEGMENT, jump=1).fit(scaled)
        ends = search.predict(pen=PENALTY * math.log(len(values)))
    else:
        ends = [len(values)]
    starts = [0, *ends[:-1]]
    lines = [_line(index[start:end], scaled[start:end]) for start, end in zip(starts, ends)]
    changes = []
    for (start, end), line in zip(zip(starts, ends), lines):
        slope, slope_error = line.slope, line.slope_error
        if slope_error > 0 and abs(slope) / slope_error > DRIFT_Z:
            size = math.exp(slope * (end - 1 - start) * noise) - 1
            changes.append(Change(DRIFT, start, end - 1, size, abs(slope) / slope_error))
    for at, left, right in zip(ends, lines, lines[1:]):  # ``at``: the first point of the right segment
        before, after = left.at(at), right.at(at)
        z = abs(after - before) / math.sqrt(left.variance_at(at) + right.variance_at(at))
        if z > STEP_Z:
            changes.append(Change(STEP, at, at, math.exp((after - before) * noise) - 1, z))
    return sorted(changes, key=lambda change: (change.start, change.kind))


def _linear_cost():
    """ruptures' linear cost (a least-squares line per segment, the residual sum of squares) for a series against
    its index, in constant time per segment from running sums, where ``CostLinear`` solves a least-squares
    problem for every segment PELT weighs (60 ms against ~1 ms for a series of 100 runs)."""
    import numpy
    from ruptures.base import BaseCost
    from ruptures.costs import NotEnoughPoints

    class LinearInIndex(BaseCost):
        model = "linear_in_index"
        min_size = 3

        def fit(self, signal):
            values = numpy.asarray(signal, dtype=float).reshape(-1)
            index = numpy.arange(len(values), dtype=float)
            self.signal = values.reshape(-1, 1)
            self.sums = [numpy.concatenate([[0.0], numpy.cumsum(column)])
                         for column in (numpy.ones_like(values), index, values, index * index, index * values,
                                        values * values)]
            return self

        def error(self, start, end):
            if end - start < self.min_size:
                raise NotEnoughPoints
            n, x, y, xx, xy, yy = (float(total[end] - total[start]) for total in self.sums)
            spread, joint, total = xx - x * x / n, xy - x * y / n, yy - y * y / n
            return max(total - (joint * joint / spread if spread > 0 else 0.0), 0.0)

    return LinearInIndex()


@dataclass(frozen=True)
class _Line:
    """A least-squares line through a segment, in units of the series' noise (1 after scaling)."""

    slope: float
    mean: float
    """Its value at ``centre``."""
    centre: float
    count: int
    spread: float
    """The sum of squared distances of the segment's indices from ``centre``."""

    @property
    def slope_error(self) -> float:
        return 1 / math.sqrt(self.spread) if self.spread > 0 else 0.0

    def at(self, index: float) -> float:
        return self.mean + self.slope * (index - self.centre)

    def variance_at(self, index: float) -> float:
        """The variance of ``at(index)``: the level's, and the slope's times the distance from the centre."""
        return 1 / self.count + ((index - self.centre) ** 2 / self.spread if self.spread > 0 else 0.0)


def _line(index, values) -> _Line:
    centre, mean = float(index.mean()), float(values.mean())
    spread = float(((index - centre) ** 2).sum())
    slope = float(((index - centre) * (values - mean)).sum()) / spread if len(index) >= 3 and spread > 0 else 0.0
    return _Line(slope, mean, centre, len(index), spread)
