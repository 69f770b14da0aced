"""A run's ETDump as a timeline (``contract.Timeline``): each execution's events with their start and end,
nested as the runtime ran them, read while the ETDump exists (``profile_program(..., timelines=...)``).

Nesting: ``Method::execute`` holds the calls of its instructions (``DELEGATE_CALL``, ``OPERATOR_CALL``); a
delegate call holds the delegate's ops of the same instruction (XNNPACK operators), an operator call its
kernel (``native_call_*``). A child that starts or ends outside its parent, or overlaps the sibling before it,
is moved inside (counted in ``Timeline.clamped``): XNNPACK times its operators on its own microsecond clock,
so their ends can stray a little from the delegate call's nanoseconds.

The cap: at most ``max_slices`` op slices are kept; when a run holds more, the ops of evenly spaced executions
(and of the slowest) are kept and every other execution keeps its ``Method::execute`` span only.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from rebirth.contract.device import Sample
from rebirth.contract.errors import ModelFileError
from rebirth.contract.timeline import CALL, DELEGATED, EXECUTE, KERNEL, Execution, Slice, Timeline
from rebirth.profiler.etdump import RunData, RunEvent, read_runs
from rebirth.profiler.ops import DELEGATE_EVENT, EXECUTE_EVENT, WRAPPER_EVENTS
from rebirth.profiler.taxonomy import classify

DEFAULT_MAX_SLICES = 8_000
"""About 0.7 MB of Chrome trace with GoogLeNet's XNNPACK op names (``benchmarks/trace_bench.py``)."""
LOAD_EVENT = "Program::load_method"
OPERATOR_EVENT = "OPERATOR_CALL"


def read_timeline(etdump_path: Path, *, label: str, device: str, warmup: int, samples: Sequence[Sample] = (),
                  max_slices: Optional[int] = DEFAULT_MAX_SLICES) -> Timeline:
    """The timeline of one ETDump: executions in the order they ran, the first ``warmup`` marked so.

    Raises:
        ModelFileError: the file is not an ETDump.
    """
    try:
        runs = read_runs(Path(etdump_path).read_bytes())
    except ValueError as error:
        raise ModelFileError(f"{etdump_path}: not a readable ETDump ({type(error).__name__}: {error})") from None
    built = [_execution(run) for run in runs if _has_execute(run)]
    warmups = warmup if len(built) > warmup else 0
    executions = [Execution(index, index < warmups, span[0], span[1], tuple(slices))
                  for index, (span, slices, _) in enumerate(built)]
    return cap(Timeline(label, device, tuple(executions), tuple(samples), _load(runs),
                        sum(clamped for _, _, clamped in built)), max_slices)


def cap(timeline: Timeline, max_slices: Optional[int]) -> Timeline:
    """``timeline`` with at most ``max_slices`` op slices (None: all): the ops of evenly spaced executions and
    of the slowest are kept, every other execution keeps its span only."""
    return replace(timeline, executions=_capped(list(timeline.executions), max_slices), max_slices=max_slices)


class Timelines:
    """Collects the timelines of the runs a use case traces, in the order they were read (a farm's workers add
    from their threads)."""

    def __init__(self, max_slices: Optional[int] = DEFAULT_MAX_SLICES):
        self.max_slices = max_slices
        self._items: list[Timeline] = []
        self._lock = threading.Lock()

    def add(self, etdump_path: Path, *, label: str, device: str, warmup: int,
            samples: Sequence[Sample] = ()) -> Timeline:
        timeline = read_timeline(etdump_path, label=label, device=device, warmup=warmup, samples=samples,
                                 max_slices=self.max_slices)
        with self._lock:
            self._items.append(timeline)
        return timeline

    @property
    def items(self) -> tuple[Timeline, ...]:
        with self._lock:
            return tuple(self._items)


def _has_execute(run: RunData) -> bool:
    return any(event.profiled and event.name == EXECUTE_EVENT for event in run.events or ())


def _load(runs: Sequence[RunData]) -> Optional[tuple[int, int]]:
    for run in runs:
        for event in run.events or ():
            if event.profiled and event.name == LOAD_EVENT:
                return event.start_time, max(event.start_time, event.end_time)
    return None


@dataclass
class _Node:
    name: str
    kind: str
    start: int
    end: int
    key: tuple[int, int]
    children: list[_Node]


def _execution(run: RunData) -> tuple[tuple[int, int], list[Slice], int]:
    """One execution's span, its slices in time order (parents first) and how many were clamped."""
    events = [event for event in run.events or () if event.profiled and _name(event)]
    execute = next(e for e in reversed(events) if e.name == EXECUTE_EVENT)
    root = _Node(EXECUTE_EVENT, EXECUTE, execute.start_time, max(execute.start_time, execute.end_time), (-1, -1), [])
    nodes = [_node(event) for event in events if event is not execute]
    calls = {(node.key, node.name): node for node in nodes if node.kind == CALL}
    for node in nodes:
        wrapper = DELEGATE_EVENT if node.kind == DELEGATED else OPERATOR_EVENT
        parent = calls.get((node.key, wrapper)) if node.kind != CALL else None
        (parent or root).children.append(node)
    clamped = _nest(root)
    slices: list[Slice] = []
    _flatten(root, 0, slices)
    return (root.start, root.end), slices, clamped


def _name(event: RunEvent) -> str:
    if event.delegate_debug_id_str:
        return event.delegate_debug_id_str
    if event.delegate_debug_id_int != -1:
        return str(event.delegate_debug_id_int)
    return event.name or ""


def _node(event: RunEvent) -> _Node:
    name = _name(event)
    delegated = bool(event.delegate_debug_id_str) or event.delegate_debug_id_int != -1
    kind = DELEGATED if delegated else CALL if name in WRAPPER_EVENTS or name == DELEGATE_EVENT else KERNEL
    return _Node(name, kind, event.start_time, max(event.start_time, event.end_time),
                 (event.chain_index, event.instruction_id), [])


def _nest(parent: _Node) -> int:
    """Move each child inside its parent and after the sibling before it; how many were moved."""
    moved, floor = 0, parent.start
    parent.children.sort(key=lambda node: (node.start, node.end))
    for child in parent.children:
        start = min(max(child.start, floor), parent.end)
        end = min(max(child.end, start), parent.end)
        moved += (start, end) != (child.start, child.end)
        child.start, child.end, floor = start, end, end
        moved += _nest(child)
    return moved


def _flatten(node: _Node, depth: int, into: list[Slice]) -> None:
    if depth:  # the root is the execution's own span
        into.append(Slice(node.name, node.kind, classify(node.name)[1], node.start, node.end, depth))
    for child in node.children:
        _flatten(child, depth + 1, into)


def _capped(executions: list[Execution], max_slices: Optional[int]) -> tuple[Execution, ...]:
    """Every execution, the ops kept for as many as ``max_slices`` allows: evenly spaced ones and the slowest."""
    total = sum(len(execution.slices) for execution in executions)
    if max_slices is None or total <= max_slices or not executions:
        return tuple(executions)
    per_execution = max(1, max(len(execution.slices) for execution in executions))
    slowest = max(range(len(executions)), key=lambda index: executions[index].ms)
    kept = {slowest} | set(_spaced([i for i in range(len(executions)) if i != slowest],
                                   max_slices // per_execution - 1))
    return tuple(execution if index in kept else Execution(execution.index, execution.warmup, execution.start_ns,
                                                           execution.end_ns)
                 for index, execution in enumerate(executions))


def _spaced(indices: list[int], count: int) -> list[int]:
    """``count`` of ``indices``, evenly spaced, the first and last among them."""
    if count <= 0 or not indices:
        return []
    if count == 1:
        return indices[:1]
    if count >= len(indices):
        return indices
    return [indices[round(step * (len(indices) - 1) / (count - 1))] for step in range(count)]
