"""`rebirth history`: every stored run of each device fingerprint and model as a series over time, with its
change points (steps and drifts, ``results.changes``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

from rebirth.contract.errors import InputError
from rebirth.contract.history import History, HistoryChange, HistoryPoint, HistorySeries
from rebirth.contract.stored import StoredRun

Z95 = 1.959964


def history(store: Path, *, device: Optional[str] = None, model: Optional[str] = None,
            say: Optional[Callable[[str], None]] = None) -> History:
    """The history of ``store`` (only ``device``'s runs, a device name or fingerprint, and ``model``'s, if given).

    Raises:
        InputError: no stored run matches.
    """
    from rebirth.results import baseline_members, list_runs

    runs = list_runs(store, device, model, say=say)
    if not runs:
        which = " that match" if device or model else ""
        raise InputError(f"no stored runs{which} in {store} (rebirth farm run stores them)")
    members = baseline_members(store)
    grouped: dict[tuple[str, str], list[StoredRun]] = {}
    for run in runs:
        grouped.setdefault(run.key, []).append(run)
    series = [_series(key, sorted(found, key=lambda run: (run.time, run.number)), members)
              for key, found in sorted(grouped.items())]
    return History(str(store), tuple(series), device, model)


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
    profile = run.profile
    low, high = median_interval(profile.latency.raw) if profile.latency.raw else (profile.latency.p50,) * 2
    return HistoryPoint(run.number, run.time, run.commit, run.device, profile.latency.p50, low, high,
                        profile.memory.peak_rss_bytes, tuple(note.text for note in profile.noise), baselines)


def median_interval(samples: Sequence[float]) -> tuple[float, float]:
    """The 95% interval of the median of ``samples`` from their order statistics (no assumption on their
    distribution; the samples taken as independent): the sorted samples at ranks n/2 -/+ 1.96 sqrt(n)/2."""
    ordered = sorted(samples)
    count = len(ordered)
    half = Z95 * math.sqrt(count) / 2
    low = max(0, math.floor(count / 2 - half) - 1)
    high = min(count - 1, math.ceil(count / 2 + half) - 1)
    return ordered[low], ordered[high]
