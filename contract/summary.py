"""Totals and shares per category, op type and layer, computed from op records."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from rebirth.contract.profile import FRAMEWORK, NON_TENSOR, TENSOR, LayerSummary, OpRecord, OpTypeSummary, Summary

TOP_LAYERS = 30


def summarize(ops: Sequence[OpRecord], top_layers: int = TOP_LAYERS) -> Summary:
    """Summary of p50 op times; shares are of the summed op time (framework rows included)."""
    by_category = {c: sum(op.p50_ms for op in ops if op.category == c) for c in (TENSOR, NON_TENSOR, FRAMEWORK)}
    total = sum(by_category.values())
    # Both parts summed alike and divided by their own sum: x / x is exactly 1 and 0 / x exactly 0, where
    # dividing by ``compute`` (summed per category, in another order) gave 0.9999999999999999 or 1.1e-16.
    attributed = sum(op.p50_ms for op in ops if op.layer and op.category != FRAMEWORK)
    unattributed = sum(op.p50_ms for op in ops if not op.layer and op.category != FRAMEWORK)
    return Summary(
        total_ms=total,
        tensor_ms=by_category[TENSOR],
        non_tensor_ms=by_category[NON_TENSOR],
        framework_ms=by_category[FRAMEWORK],
        tensor_share=_share(by_category[TENSOR], total),
        non_tensor_share=_share(by_category[NON_TENSOR], total),
        framework_share=_share(by_category[FRAMEWORK], total),
        attributed_share=_share(attributed, attributed + unattributed),
        by_op_type=tuple(op_type_table(ops)),
        top_layers=tuple(layer_table(ops)[:top_layers]),
    )


def op_type_table(ops: Sequence[OpRecord]) -> list[OpTypeSummary]:
    """TFLite's "summary by node type": count, ms, share and cumulative share, slowest first."""
    groups: dict[tuple[str, str], list[OpRecord]] = defaultdict(list)
    for op in ops:
        groups[(op.op_type, op.category)].append(op)
    total = sum(op.p50_ms for op in ops)
    rows, cumulative = [], 0.0
    for (op_type, category), members in sorted(groups.items(), key=lambda item: -sum(o.p50_ms for o in item[1])):
        ms = sum(o.p50_ms for o in members)
        cumulative += _share(ms, total)
        rows.append(OpTypeSummary(op_type, category, len(members), ms, _share(ms, total), min(cumulative, 1.0)))
    return rows


def layer_table(ops: Sequence[OpRecord]) -> list[LayerSummary]:
    """Time per source layer, slowest first; ops without a layer are left out."""
    groups: dict[str, list[OpRecord]] = defaultdict(list)
    for op in ops:
        if op.layer:
            groups[op.layer].append(op)
    total = sum(op.p50_ms for op in ops)
    rows = []
    for layer, members in groups.items():
        by_category = {c: sum(o.p50_ms for o in members if o.category == c) for c in (TENSOR, NON_TENSOR, FRAMEWORK)}
        ms = sum(by_category.values())
        module_type = next((o.module_type for o in members if o.module_type), None)
        rows.append(LayerSummary(layer, ms, _share(ms, total), module_type, by_category[TENSOR],
                                 by_category[NON_TENSOR], by_category[FRAMEWORK], len(members)))
    return sorted(rows, key=lambda row: -row.ms)


def _share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0
