"""Is one run's latency statistic significantly larger than another's? The noise model of the regression checks.

Latency samples of one run are not independent draws: consecutive inferences share caches, clocks
and background load, so they are autocorrelated and drift. The standard error of a statistic (the
median, a percentile, the mean) of one run is therefore estimated with a seeded *circular block
bootstrap* (blocks of about n^(1/3) consecutive samples keep the short-range dependence that an
i.i.d. bootstrap would destroy) on the log scale.

Two runs made on different occasions also differ by more than their samples show: the level of a
whole run moves with temperature, clocks and whatever else the device is doing. No test on the
samples of two single runs can see that, so it enters as ``run_noise``: the relative standard
deviation of a run's statistic from one run to the next, measured from repeated runs of the
baseline (``run_noise_of``) or assumed. The standard error of the log ratio of the two statistics is

    se = sqrt(se_before^2 + se_after^2 + 2 * run_noise^2)

and the interval and one-sided p-value follow from the normal distribution of the log ratio.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy

Statistic = Callable[[numpy.ndarray], numpy.ndarray]
"""A latency statistic computed along the last axis (one value per row of resampled runs)."""

RESAMPLES = 1000
SEED = 0


@dataclass(frozen=True)
class RatioTest:
    """after / before of a statistic, its interval and the one-sided p-value of "after is not larger"."""

    before: float
    after: float
    ratio: float
    low: float
    high: float
    p_value: float
    confidence: float


def percentile_statistic(q: float) -> Statistic:
    """The ``q``-th percentile along the last axis (numpy's default rule, the one ``contract.stats`` uses)."""
    return functools.partial(numpy.percentile, q=q, axis=-1)


def trimmed_mean_statistic(proportion: float) -> Statistic:
    """The mean after cutting ``proportion`` of the samples from each end (as ``contract.stats.trimmed_mean``)."""
    def trimmed(samples: numpy.ndarray) -> numpy.ndarray:
        import scipy.stats  # half a second to import: only when this statistic is asked for

        return scipy.stats.trim_mean(samples, proportiontocut=proportion, axis=-1)

    return trimmed


def ratio_test(before: Sequence[float], after: Sequence[float], statistic: Statistic, confidence: float,
               run_noise: float = 0.0, resamples: int = RESAMPLES, seed: int = SEED) -> RatioTest:
    """Compare ``statistic`` of two runs' raw samples (each at least two samples, all positive).

    Args:
        before: the baseline run's samples, in the order they were measured.
        after: the current run's samples, in order.
        statistic: what is compared, e.g. ``percentile_statistic(50)``.
        confidence: coverage of the two-sided interval ``[low, high]`` of the ratio.
        run_noise: relative standard deviation of a run's statistic between runs (0.02 = 2%).
        resamples: bootstrap resamples per run.
        seed: the bootstrap's seed: the same inputs always give the same answer.
    """
    generator = numpy.random.default_rng(seed)
    before_value, after_value = _value(before, statistic), _value(after, statistic)
    log_ratio = math.log(after_value / before_value)
    error = math.sqrt(log_standard_error(before, statistic, generator, resamples) ** 2
                      + log_standard_error(after, statistic, generator, resamples) ** 2 + 2 * run_noise ** 2)
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    return RatioTest(before=before_value, after=after_value, ratio=math.exp(log_ratio),
                     low=math.exp(log_ratio - z * error), high=math.exp(log_ratio + z * error),
                     p_value=_upper_tail(log_ratio, error), confidence=confidence)


def log_standard_error(samples: Sequence[float], statistic: Statistic, generator: numpy.random.Generator,
                       resamples: int = RESAMPLES) -> float:
    """Standard error of log(statistic) of one run, by a circular block bootstrap (written here:
    ``scipy.stats.bootstrap`` resamples single samples, which breaks the runs' autocorrelation)."""
    values = numpy.asarray(samples, dtype=float)
    length = block_length(len(values))
    wrapped = numpy.concatenate([values, values[:length - 1]])
    resampled = wrapped[block_indices(len(values), length, generator, resamples)]
    return float(numpy.std(numpy.log(statistic(resampled)), ddof=1))


def block_length(samples: int) -> int:
    """About n^(1/3) consecutive samples per block, the usual rate for a block bootstrap."""
    return max(1, round(samples ** (1 / 3)))


def block_indices(samples: int, length: int, generator: numpy.random.Generator, resamples: int) -> numpy.ndarray:
    """Indices of ``resamples`` resamples of ``samples`` values made of blocks of ``length`` consecutive
    indices starting anywhere in the run, into the run followed by its first ``length - 1`` values again
    (the blocks wrap around: a circular block bootstrap)."""
    blocks = -(-samples // length)
    starts = generator.integers(0, samples, size=(resamples, blocks, 1))
    return (starts + numpy.arange(length)).reshape(resamples, -1)[:, :samples]


def run_noise_of(runs: Sequence[Sequence[float]], statistic: Statistic) -> float:
    """The relative run-to-run noise of ``statistic``: the standard deviation of its log over repeated runs."""
    if len(runs) < 2:
        raise ValueError("the run-to-run noise needs at least two runs")
    return log_spread([_value(run, statistic) for run in runs])


def log_spread(values: Sequence[float]) -> float:
    """The standard deviation of the log of ``values`` (at least two, all positive)."""
    if len(values) < 2:
        raise ValueError("the run-to-run noise needs at least two runs")
    return float(numpy.std(numpy.log(values), ddof=1))


def _value(samples: Sequence[float], statistic: Statistic) -> float:
    return float(statistic(numpy.asarray(samples, dtype=float)))


def _upper_tail(log_ratio: float, error: float) -> float:
    """P(a log ratio this large or larger | no change), one-sided."""
    if error == 0:
        return 0.0 if log_ratio > 0 else 1.0
    return 0.5 * math.erfc(log_ratio / error / math.sqrt(2))
