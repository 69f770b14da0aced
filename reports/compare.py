"""The comparison of two Profiles (before and after slimming), shared by the HTML and terminal views.

Pure data: no formatting, no rendering. ``after`` may be None (a single profile) and ``slim``
(the slim.json document) may be None; every field that cannot be computed is None.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

import numpy

from rebirth.contract.device import EXTERNAL, NATIVE
from rebirth.contract.paired import PairedComparison
from rebirth.contract.profile import CATEGORIES, LayerSummary, OpTypeSummary, Profile
from rebirth.contract.slim import AGREEMENT, FIDELITY, TOP1, SlimRecord
from rebirth.contract.summary import layer_table

KEPT, MERGED, REMOVED, REGENERATED = "kept", "merged", "removed", "regenerated"
THINNED, DECOMPOSED = "thinned", "decomposed"
STEP_MARKS = {"reduce_channels": THINNED, "low_rank": DECOMPOSED}
"""What a step did to the layers it names, where that is not a merge: a channel cut thins them, a low-rank step
decomposes them."""
ONLY_BEFORE, ONLY_AFTER = "only before", "only after"

Positioned = dict[str, tuple[float, LayerSummary]]
"""Layer name -> (position in the run from 0 to 1, its summary)."""

RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 0


@dataclass(frozen=True)
class Spread:
    """A ratio with a confidence interval: from a paired comparison (runs of both sides alternating on one
    device, the interval over their pairs) or, unpaired, a bootstrap over the samples inside each of two
    profiles, which knows nothing of the drift between them."""

    value: float
    low: float
    high: float
    confidence: float = CONFIDENCE
    paired: bool = False
    blocks: int = 0
    runs: int = 0
    decided: bool = True
    reason: str = ""
    how: str = ""
    noisy_runs: int = 0
    """Paired runs whose own spread or device said they were noisy (the pairs' interval holds that)."""


@dataclass(frozen=True)
class Change:
    """One quantity before and after; either side may be unknown."""

    before: Optional[float]
    after: Optional[float]

    @property
    def ratio(self) -> Optional[float]:
        """after / before, or None when either is unknown or before is zero."""
        if self.before is None or self.after is None or not self.before:
            return None
        return self.after / self.before

    @property
    def saving(self) -> Optional[float]:
        """The fraction saved (1 - ratio): positive when after is smaller."""
        ratio = self.ratio
        return None if ratio is None else 1.0 - ratio


@dataclass(frozen=True)
class AccuracyChange:
    """Accuracy of the original and the slimmed model, in percent, as slim.json measured it.

    ``metric`` is ``top1`` when both models were scored on held-out labels, ``fidelity`` when accuracy could
    not judge (``reason`` says why; ``fidelity`` is 100 minus the relative error of the logits), or
    ``agreement`` for a slim.json of version 2, which judged such models by shared predictions.
    """

    metric: str
    dataset: Optional[str]
    before: Optional[float]
    after: Optional[float]
    agreement: Optional[float]
    fidelity: Optional[float] = None
    reason: Optional[str] = None

    @property
    def delta(self) -> Optional[float]:
        """Change in percentage points, or None when only the agreement is known."""
        if self.before is None or self.after is None:
            return None
        return self.after - self.before


@dataclass(frozen=True)
class Side:
    """What one profile ran: model, device and backend."""

    model: str
    """Where the model came from (its source), else the .pte's path."""
    device: str
    backend: str


@dataclass(frozen=True)
class Headline:
    """The numbers a reader looks at first."""

    sides: tuple[Side, ...]
    latency_p50: Change
    speedup: Optional[Spread]
    planned: Change
    model_rss: Change
    accuracy: Optional[AccuracyChange]
    peak_rss: Change = Change(None, None)
    weights: Change = Change(None, None)
    """Constant bytes of each .pte: the weights as the program stores them (int8 shrinks them)."""
    native: bool = False
    """Every side ran on a native runner, whose peak RSS is the model's runtime memory (a Python runner's
    is mostly Python: then the peak above its idle RSS is what the model costs)."""


@dataclass(frozen=True)
class LayerRow:
    """One source layer lined up across the two models.

    ``delta_ms`` is after - before, counting a missing side as 0 ms (the time a removed layer
    gave back); it is None for a single profile.
    """

    layer: str
    module_type: Optional[str]
    before_ms: Optional[float]
    after_ms: Optional[float]
    delta_ms: Optional[float]
    status: str


@dataclass(frozen=True)
class OpTypeRow:
    """One op type with its summary row on each side (None where the type does not occur)."""

    op_type: str
    category: str
    before: Optional[OpTypeSummary]
    after: Optional[OpTypeSummary]
    delta_ms: Optional[float]


@dataclass(frozen=True)
class CategoryRow:
    """Time in one category (tensor, non-tensor, framework) on each side."""

    category: str
    before_ms: float
    before_share: float
    after_ms: Optional[float]
    after_share: Optional[float]


@dataclass(frozen=True)
class Comparison:
    """Everything the reports show about one profile or a before/after pair."""

    before: Profile
    after: Optional[Profile]
    slim: Optional[SlimRecord]
    headline: Headline
    layers: tuple[LayerRow, ...]
    op_types: tuple[OpTypeRow, ...]
    categories: tuple[CategoryRow, ...]

    @property
    def profiles(self) -> tuple[Profile, ...]:
        """The profiles compared, before first."""
        return (self.before,) if self.after is None else (self.before, self.after)


def compare(before: Profile, after: Optional[Profile] = None, slim: Optional[SlimRecord] = None,
            paired: Optional[PairedComparison] = None) -> Comparison:
    """Compare ``before`` with ``after`` (or describe ``before`` alone) using slim.json's merges; the speed-up
    comes from ``paired`` when the two were measured side by side."""
    return Comparison(
        before=before,
        after=after,
        slim=slim,
        headline=headline(before, after, slim, paired),
        layers=align_layers(before, after, slim),
        op_types=compare_op_types(before, after),
        categories=compare_categories(before, after),
    )


def headline(before: Profile, after: Optional[Profile], slim: Optional[SlimRecord],
             paired: Optional[PairedComparison] = None) -> Headline:
    """Speed-up with its spread, memory changes, accuracy change, and what ran where."""
    profiles = (before,) if after is None else (before, after)

    def change(read: Callable[[Profile], Optional[float]]) -> Change:
        return Change(read(before), None if after is None else read(after))

    return Headline(
        sides=tuple(Side(p.model.source or p.model.path, p.device.name, p.model.backend) for p in profiles),
        latency_p50=change(lambda p: p.latency.p50),
        speedup=paired_speedup(paired) if paired is not None else None if after is None else speedup(
            before.latency.raw, after.latency.raw, before.latency.p50, after.latency.p50),
        planned=change(lambda p: p.memory.planned_bytes),
        model_rss=change(lambda p: p.memory.model_rss_bytes),
        accuracy=accuracy_change(slim),
        peak_rss=change(lambda p: p.memory.peak_rss_bytes),
        weights=change(lambda p: p.memory.constant_bytes),
        native=all(p.device.runner_kind in (NATIVE, EXTERNAL) for p in profiles),
    )


def paired_speedup(paired: PairedComparison) -> Spread:
    """A over B from a paired comparison, with its interval over the pairs."""
    low, high = paired.speedup_interval
    return Spread(paired.speedup, low, high, paired.confidence, paired=True, blocks=paired.blocks,
                  runs=len(paired.runs), decided=paired.decided, reason=paired.reason,
                  how=paired.how + (f"; {paired.discarded_shown()}" if paired.discarded else ""),
                  noisy_runs=sum(1 for run in paired.runs if run.noise and not run.discarded))


def speedup(before: Sequence[float], after: Sequence[float], before_p50: float, after_p50: float,
            resamples: int = RESAMPLES, seed: int = SEED) -> Optional[Spread]:
    """before p50 / after p50, with a seeded bootstrap interval over the raw latency samples.

    The interval is the central ``CONFIDENCE`` range of the ratio of the medians of samples
    drawn with replacement from each side. None when after's p50 is zero.
    """
    if not after_p50:
        return None
    value = before_p50 / after_p50
    if not before or not after:
        return Spread(value, value, value)
    import scipy.stats  # here: its import costs ~0.7 s, which views that do not bootstrap should not pay

    interval = scipy.stats.bootstrap((before, after), _ratio_of_medians, n_resamples=resamples, vectorized=True,
                                     confidence_level=CONFIDENCE, method="percentile",
                                     rng=numpy.random.default_rng(seed)).confidence_interval
    return Spread(value, float(interval.low), float(interval.high))


def _ratio_of_medians(before: numpy.ndarray, after: numpy.ndarray, axis: int = -1) -> numpy.ndarray:
    return numpy.median(before, axis=axis) / numpy.median(after, axis=axis)


def accuracy_change(slim: Optional[SlimRecord]) -> Optional[AccuracyChange]:
    """The accuracy of slim.json; top-1 only when both models were scored."""
    accuracy = slim.accuracy if slim else None
    if accuracy is None:
        return None
    before, after = accuracy.before, accuracy.after
    scored = accuracy.metric == TOP1 and before is not None and after is not None
    return AccuracyChange(
        metric=TOP1 if scored else FIDELITY if accuracy.metric == FIDELITY else AGREEMENT,
        dataset=accuracy.dataset,
        before=before.top1 if scored and before else None,
        after=after.top1 if scored and after else None,
        agreement=accuracy.agreement,
        fidelity=accuracy.fidelity,
        reason=accuracy.reason,
    )


def align_layers(before: Profile, after: Optional[Profile], slim: Optional[SlimRecord]) -> tuple[LayerRow, ...]:
    """Every source layer of either model, in execution order, marked with what the slimmer did."""
    ours = _layers(before)
    theirs = _layers(after) if after is not None else {}
    marks = slim_marks(slim)
    rows = []
    for name in _merged_order(ours, theirs):
        mine, other = ours.get(name), theirs.get(name)
        summary = (mine or other or (0.0, LayerSummary(name, 0.0, 0.0)))[1]
        before_ms = mine[1].ms if mine else None
        after_ms = other[1].ms if other else None
        rows.append(LayerRow(
            layer=name,
            module_type=summary.module_type,
            before_ms=before_ms,
            after_ms=after_ms,
            delta_ms=None if after is None else (after_ms or 0.0) - (before_ms or 0.0),
            status=marks.get(name) or _presence(mine is not None, other is not None, after is not None),
        ))
    return tuple(rows)


def _merged_order(ours: Positioned, theirs: Positioned) -> list[str]:
    """Layer names of both sides in run order: a layer only in ``theirs`` follows the layer it follows there."""
    keys = {name: (position, 0) for name, (position, _) in ours.items()}
    anchor, offset = -1.0, 0
    for name in sorted(theirs, key=lambda name: theirs[name][0]):
        if name in ours:
            anchor, offset = ours[name][0], 0
        else:
            offset += 1
            keys[name] = (anchor, offset)
    return sorted(keys, key=keys.__getitem__)


def _layers(profile: Profile) -> Positioned:
    """Each layer's summary keyed by name, with its position in the run (0 = first, 1 = last).

    Built from the op records, which list every layer; ``summary.top_layers`` (capped) is the
    fallback for a profile without op rows, ranked by time.
    """
    if profile.ops:
        first: dict[str, int] = {}
        for op in profile.ops:
            if op.layer:
                first.setdefault(op.layer, op.index)
        last = max(op.index for op in profile.ops) or 1
        return {row.layer: (first[row.layer] / last, row) for row in layer_table(profile.ops)}
    count = len(profile.summary.top_layers) or 1
    return {row.layer: (rank / count, row) for rank, row in enumerate(profile.summary.top_layers)}


def slim_marks(slim: Optional[SlimRecord]) -> dict[str, str]:
    """Layer name -> removed, merged, thinned, decomposed or regenerated, from slim.json's applied steps: a layer
    a merge deleted is removed, its other layers were merged; a channel reduction thinned its layers and a
    low-rank step decomposed its own; a layer learned again is regenerated."""
    marks: dict[str, str] = {}
    merges = slim.merges if slim else ()
    for merge in merges:
        done = STEP_MARKS.get(merge.kind, MERGED)
        marks.update({layer: REMOVED if layer in merge.removed else done for layer in merge.layers})
    for merge in merges:
        marks.update(dict.fromkeys(merge.learned, REGENERATED))
    return marks


def _presence(in_before: bool, in_after: bool, compared: bool) -> str:
    if not compared or (in_before and in_after):
        return KEPT
    return ONLY_BEFORE if in_before else ONLY_AFTER


def compare_op_types(before: Profile, after: Optional[Profile]) -> tuple[OpTypeRow, ...]:
    """Op types of both sides lined up, slowest in ``before`` first, then types new in ``after``."""
    ours = {(row.op_type, row.category): row for row in before.summary.by_op_type}
    theirs = {(row.op_type, row.category): row for row in after.summary.by_op_type} if after else {}
    keys = list(ours) + [key for key in theirs if key not in ours]
    rows = []
    for op_type, category in keys:
        mine, other = ours.get((op_type, category)), theirs.get((op_type, category))
        rows.append(OpTypeRow(op_type, category, mine, other, None if after is None else _ms(other) - _ms(mine)))
    return tuple(rows)


def _ms(row: Optional[OpTypeSummary]) -> float:
    return row.ms if row else 0.0


def compare_categories(before: Profile, after: Optional[Profile]) -> tuple[CategoryRow, ...]:
    """Tensor, non-tensor and framework time (p50 sums) and shares on each side."""
    return tuple(
        CategoryRow(category, *_category(before, category),
                    *(_category(after, category) if after else (None, None)))
        for category in CATEGORIES
    )


def _category(profile: Profile, category: str) -> tuple[float, float]:
    summary = profile.summary
    return getattr(summary, f"{category}_ms"), getattr(summary, f"{category}_share")
