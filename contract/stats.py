"""Latency statistics of raw samples (milliseconds), from the standard library: the contract stays light.

``percentile`` is numpy's default definition (linear interpolation; ``statistics.quantiles`` with the
inclusive method is the same rule), so a statistic computed here and one computed with numpy on the same
samples agree.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

Z95 = 1.959964


def percentile(samples: Sequence[float], q: int) -> float:
    """The ``q``-th percentile (a whole number from 0 to 100) of ``samples`` (at least one)."""
    if not samples:
        raise ValueError("percentile of no samples")
    if q in (0, 100) or len(samples) == 1:
        return float(max(samples) if q == 100 else min(samples) if q == 0 else samples[0])
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def trimmed_mean(samples: Sequence[float], proportion: float = 0.1) -> float:
    """Mean after cutting ``int(proportion * n)`` samples from each end: ``scipy.stats.trim_mean``'s rule,
    written out because the contract does not import scipy."""
    ordered = sorted(samples)
    cut = int(len(ordered) * proportion)
    return statistics.fmean(ordered[cut:len(ordered) - cut] or ordered)


def mean_std(samples: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single sample)."""
    return statistics.fmean(samples), statistics.stdev(samples) if len(samples) > 1 else 0.0


def median_interval(samples: Sequence[float]) -> tuple[float, float]:
    """The 95% interval of the median of ``samples`` from their order statistics (no assumption on their
    distribution; the samples taken as independent): the sorted samples at ranks n/2 -/+ 1.96 sqrt(n)/2."""
    ordered = sorted(samples)
    count = len(ordered)
    half = Z95 * math.sqrt(count) / 2
    low = max(0, math.floor(count / 2 - half) - 1)
    high = min(count - 1, math.ceil(count / 2 + half) - 1)
    return ordered[low], ordered[high]
