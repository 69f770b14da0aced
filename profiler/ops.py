"""Turn a Trace into one row per op event, each with its layer, type and category."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from rebirth.contract import stats
from rebirth.contract.profile import FRAMEWORK, OpRecord
from rebirth.models.pte import DelegateBlob
from rebirth.profiler import xnnpack
from rebirth.profiler.etrecord import SourceMap, SourceNode
from rebirth.profiler.taxonomy import classify, normalize
from rebirth.profiler.trace import Trace, TraceEvent

WRAPPER_EVENTS = {"OPERATOR_CALL"}
DELEGATE_EVENT = "DELEGATE_CALL"
EXECUTE_EVENT = "Method::execute"


@dataclass(frozen=True)
class OpSamples:
    """One op row before shares are known: its samples and where it came from."""

    name: str
    samples: tuple[float, ...]
    backend: str
    node: Optional[SourceNode]
    own_node: bool = True


def drop_warmup(samples: Sequence[float], warmup: int) -> tuple[float, ...]:
    """The samples after the first ``warmup`` (all of them if there are no more)."""
    kept = tuple(samples[warmup:])
    return kept or tuple(samples)


def op_samples(trace: Trace, warmup: int, blobs: Sequence[DelegateBlob], kernels: dict[int, str],
               source: Optional[SourceMap]) -> list[OpSamples]:
    """Every op event once: native calls (not their OPERATOR_CALL wrapper), delegate ops with
    their offline attribution, and each delegate call's own overhead as a framework row."""
    by_instruction: dict[int, list[TraceEvent]] = defaultdict(list)
    for event in trace.events:
        by_instruction[event.instruction].append(event)
    backends = {blob.instruction: blob for blob in blobs}
    rows: list[OpSamples] = []
    for instruction in sorted(by_instruction):
        events = [e for e in by_instruction[instruction] if e.name != EXECUTE_EVENT]
        if instruction in backends or any(e.delegated for e in events):
            rows += _delegate_rows(events, backends.get(instruction), warmup, source)
        else:
            rows += _kernel_rows(events, kernels.get(instruction), warmup, source)
    return rows


def _kernel_rows(events: list[TraceEvent], kernel: Optional[str], warmup: int,
                 source: Optional[SourceMap]) -> list[OpSamples]:
    calls = [e for e in events if e.name not in WRAPPER_EVENTS and e.name != DELEGATE_EVENT]
    if not calls:
        calls = [e for e in events if e.name in WRAPPER_EVENTS]
    rows = []
    for event in calls:
        name = event.name if event.name not in WRAPPER_EVENTS else (kernel or event.name)
        node = source.node(_first(source.instructions.get(event.instruction))) if source else None
        rows.append(OpSamples(name, drop_warmup(event.raw_ms, warmup), "portable", node))
    return rows


def _delegate_rows(events: list[TraceEvent], blob: Optional[DelegateBlob], warmup: int,
                   source: Optional[SourceMap]) -> list[OpSamples]:
    backend = blob.backend if blob else "delegate"
    inner = [e for e in events if e.delegated]
    calls = [e for e in events if e.name == DELEGATE_EVENT]
    attributions = _attribute(inner, blob, source) if source else [(None, False)] * len(inner)
    rows = [OpSamples(e.name, drop_warmup(e.raw_ms, warmup), backend,
                      source.node(handle) if source else None, own)
            for e, (handle, own) in zip(inner, attributions)]
    for call in calls:
        overhead = _residual(drop_warmup(call.raw_ms, warmup), [r.samples for r in rows])
        rows.append(OpSamples(f"{DELEGATE_EVENT} {backend}", overhead, backend, None))
    return rows


def _attribute(inner: list[TraceEvent], blob: Optional[DelegateBlob],
               source: SourceMap) -> list[tuple[Optional[int], bool]]:
    """Per event: the debug handle of its source node, and whether the event is that node's
    own operator (rather than a layout copy or extra operator that inherits the layer)."""
    if blob is None or blob.backend != "XnnpackBackend":
        return [(None, False)] * len(inner)
    try:
        nodes = xnnpack.parse_graph(blob.data)
    except (ValueError, KeyError):
        return [(None, False)] * len(inner)
    claimed = {node.debug_handle for node in nodes}
    spare = {handle: found.op for handle in source.instructions.get(blob.instruction, ())
             if handle not in claimed and (found := source.node(handle)) is not None}
    return [(a.debug_handle, a.own) for a in xnnpack.align([e.name for e in inner], nodes, spare)]


def _residual(total: Sequence[float], parts: Sequence[Sequence[float]]) -> tuple[float, ...]:
    """Per execution: the call's time minus the ops inside it, never below zero."""
    result = []
    for index, value in enumerate(total):
        inside = sum(p[index] for p in parts if index < len(p))
        result.append(max(0.0, value - inside))
    return tuple(result)


def _first(handles: Optional[tuple[int, ...]]) -> Optional[int]:
    return handles[0] if handles else None


def to_records(rows: Sequence[OpSamples]) -> list[OpRecord]:
    """OpRecords with p50 statistics and each op's share of the summed p50 time."""
    p50s = [stats.percentile(r.samples, 50) if r.samples else 0.0 for r in rows]
    total = sum(p50s) or 1.0
    records = []
    for index, (row, p50) in enumerate(zip(rows, p50s)):
        source_op = row.node.op if row.node else None
        # A kernel's own name is exact; a delegate's operator names say less than its source node.
        by_source = source_op if row.backend != "portable" and row.own_node else None
        op_type, category = classify(row.name.split(" ")[0] if row.name.startswith(DELEGATE_EVENT) else row.name,
                                     by_source)
        samples = row.samples or (0.0,)
        records.append(OpRecord(
            index=index, name=row.name, op_type=op_type, category=category,
            layer=row.node.layer if row.node and category != FRAMEWORK else None,
            p50_ms=p50, mean_ms=sum(samples) / len(samples), min_ms=min(samples),
            p90_ms=stats.percentile(samples, 90), share=p50 / total, backend=row.backend,
            source_op=source_op, module_type=row.node.module_type if row.node else None))
    return records


def source_map_mismatch(source: SourceMap, trace: Trace, blobs: Sequence[DelegateBlob],
                        kernels: dict[int, str]) -> Optional[str]:
    """Why an ETRecord does not belong to the traced .pte, or None when it does."""
    instructions = {e.instruction for e in trace.events if e.name != EXECUTE_EVENT}
    missing = instructions - set(source.instructions)
    if missing:
        return f"it has no debug handles for instructions {sorted(missing)[:5]}"
    delegate_positions = {b.instruction for b in blobs}
    if source.delegates and set(source.delegates) != delegate_positions:
        return "its delegate calls sit at other instructions"
    for blob in blobs:
        if blob.backend != "XnnpackBackend":
            continue
        try:
            handles = {n.debug_handle for n in xnnpack.parse_graph(blob.data) if n.debug_handle is not None}
        except (ValueError, KeyError):
            continue
        if not handles <= set(source.instructions.get(blob.instruction, ())):
            return f"the XNNPACK graph of instruction {blob.instruction} refers to nodes it does not have"
    agree = total = 0
    for instruction, kernel in kernels.items():
        node = source.node(_first(source.instructions.get(instruction)))
        if node is None:
            continue
        total += 1
        agree += classify(kernel)[0] == classify(node.op)[0] or normalize(kernel) == normalize(node.op)
    if total and agree / total < 0.5:
        return f"only {agree} of its {total} kernel instructions match the .pte's operators"
    return None
