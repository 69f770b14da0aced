"""`rebirth history`: every stored run of each device fingerprint and model as a series over time, with its
change points (steps and drifts, ``results.changes``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Optional

from rebirth.contract.errors import InputError
from rebirth.contract.history import History, HistoryChange, HistoryPoint, HistorySeries
from rebirth.contract.stored import StoredRun, median_interval

__all__ = ["history", "median_interval"]


def history(store: Optional[str] = None, *, device: Optional[str] = None, model: Optional[str] = None,
            say: Optional[Callable[[str], None]] = None) -> History:
    """The history of ``store`` (only ``device``'s runs, a device name or fingerprint, and ``model``'s, if given),
    from the runs' summaries.

    Raises:
        InputError: no stored run matches.
    """
    from rebirth.results import open_store

    with open_store(store, say) as opened:
        runs = opened.runs(device, model, say)
        if not runs:
            which = " that match" if device or model else ""
            raise InputError(f"no stored runs{which} in {opened.location} (rebirth farm run stores them)")
        members = opened.baseline_members()
        location = opened.location
    grouped: dict[tuple[str, str], list[StoredRun]] = {}
    for run in runs:
        grouped.setdefault(run.key, []).append(run)
    series = [_series(key, sorted(found, key=lambda run: (run.time, run.number)), members)
              for key, found in sorted(grouped.items())]
    return History(location, tuple(series), device, model)


def _series(key: tuple[str, str], runs: list[StoredRun],
            members: dict[tuple[str, int], tuple[str, ...]]) -> HistorySeries:
    from rebirth.results.changes import find_changes, noise_of

    points = tuple(_point(run, members.get((run.fingerprint, run.number), ())) for run in runs)
    clean = [index for index, point in enumerate(points) if not point.flags]
    values = [points[index].p50_ms for index in clean]
    changes = []
    for change in find_changes(values):
        start, end = clean[change.start], clean[change.end]
        first = points[start]
        changes.append(HistoryChange(change.kind, start, end, change.size, first.commit, first.time, change.z))
    noise = noise_of([math.log(value) for value in values]) if len(values) >= 3 and min(values) > 0 else None
    return HistorySeries(key[0], key[1], points, tuple(changes), noise)


def _point(run: StoredRun, baselines: tuple[str, ...]) -> HistoryPoint:
    summary = run.summary
    return HistoryPoint(run.number, run.time, run.commit, run.device, summary.p50_ms, summary.p50_low_ms,
                        summary.p50_high_ms, summary.peak_rss_bytes, summary.noise, baselines)
