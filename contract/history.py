"""The history of the result store: every stored run of a device fingerprint and model as one series over time,
with the change points found in it (``rebirth history``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

STEP, DRIFT = "step", "drift"


@dataclass(frozen=True)
class HistoryPoint:
    """One stored run, as the history shows it."""

    number: int
    time: str
    commit: Optional[str]
    device: str
    p50_ms: float
    p50_low_ms: float
    p50_high_ms: float
    """The 95% interval of the p50 from the run's own samples (order statistics; samples taken as independent)."""
    peak_rss_bytes: Optional[int]
    flags: tuple[str, ...] = ()
    """Why the run's latency may not be the model's alone (busy, throttled, spread out): left out of the change
    points."""
    baselines: tuple[str, ...] = ()
    """The baselines that hold this run."""


@dataclass(frozen=True)
class HistoryChange:
    """A change point of a series: a step before point ``start``, or a drift over points ``start`` to ``end``
    (indices into the series' points); ``size`` is relative (+0.05: 5% slower after), ``commit`` is the first
    run's after a step, or the first of a drift."""

    kind: str
    start: int
    end: int
    size: float
    commit: Optional[str]
    time: str
    z: float
    """How many standard errors of the series' run-to-run noise the change is from none."""

    def describe(self) -> str:
        """``+5.1% step at abc1234567 (2026-12-01)`` or ``+9.8% drift over 60 runs from ...``."""
        where = f"{(self.commit or 'no commit')[:10]} ({self.time[:10]})"
        if self.kind == STEP:
            return f"{100 * self.size:+.1f}% step at {where}"
        return f"{100 * self.size:+.1f}% drift over {self.end - self.start + 1} runs from {where}"


@dataclass(frozen=True)
class HistorySeries:
    """Every stored run of one device fingerprint and model, oldest first."""

    fingerprint: str
    model_key: str
    points: tuple[HistoryPoint, ...]
    changes: tuple[HistoryChange, ...] = ()
    noise: Optional[float] = None
    """The run-to-run noise of the p50 (relative), measured from the unflagged runs; None with too few."""

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(point.device for point in self.points))


@dataclass(frozen=True)
class History:
    """The series of a store, by fingerprint then model."""

    store: str
    series: tuple[HistorySeries, ...]
    device: Optional[str] = None
    model: Optional[str] = None
    """The filters asked for, if any."""

    def to_dataframe(self):
        """Every run of every series as a pandas DataFrame, oldest first in each: fingerprint, model, number,
        time, commit, device, p50_ms, p50_low_ms, p50_high_ms, peak_rss_bytes, flags, baselines, and the change
        point a run starts (``step`` or ``drift``, else empty)."""
        import pandas

        rows = []
        for series in self.series:
            starts = {change.start: change.kind for change in series.changes}
            rows += [dict(fingerprint=series.fingerprint, model=series.model_key, number=point.number,
                          time=point.time, commit=point.commit, device=point.device, p50_ms=point.p50_ms,
                          p50_low_ms=point.p50_low_ms, p50_high_ms=point.p50_high_ms,
                          peak_rss_bytes=point.peak_rss_bytes, flags="; ".join(point.flags),
                          baselines=", ".join(point.baselines), change=starts.get(index, ""))
                     for index, point in enumerate(series.points)]
        return pandas.DataFrame(rows)
