"""Timelines as a Chrome trace (the JSON trace-event format that ui.perfetto.dev and chrome://tracing open).

One process per timeline (the A and B runs of a comparison, the before and after of `optimize`, each device
of a farm run), its executions on one thread: ``Method::execute`` slices with their calls and ops nested
inside; the program's load; counter tracks for each reading the device gave while the runner ran (clock,
temperature, RSS, battery current and voltage). Times are microseconds on the runtime's clock, rounded to
0.1 µs; the file is compact JSON with short categories, and what was capped is said in ``otherData``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rebirth.contract.device import Sample
from rebirth.contract.errors import InputError
from rebirth.contract.files import write_text_atomic
from rebirth.contract.timeline import Execution, Timeline

THREAD = 1
CATEGORIES = {"execute": "run", "call": "rt", "kernel": "op", "delegated": "dlg"}
"""Short category names: the method's run, a runtime call, a kernel of the program, a delegate's op."""

COUNTERS: tuple[tuple[str, str, Callable[[Sample], Optional[float]]], ...] = (
    ("clock", "MHz", lambda s: None if s.freq_khz is None else s.freq_khz / 1000),
    ("temperature", "°C", lambda s: s.temperature_c),
    ("RSS", "MB", lambda s: None if s.rss_bytes is None else s.rss_bytes / 1e6),
    ("current", "mA", lambda s: None if s.current_ua is None else s.current_ua / 1000),
    ("voltage", "V", lambda s: None if s.voltage_uv is None else s.voltage_uv / 1e6),
)
"""Counter tracks: name, unit and the reading of a Sample; a track is written when any sample has a value."""


@dataclass(frozen=True)
class TraceSummary:
    """What a trace file holds, for the line a command prints."""

    path: Path
    executions: int
    detailed: int
    timelines: int
    bytes: int
    clamped: int
    max_slices: Optional[int]

    def line(self) -> str:
        capped = ("" if self.detailed == self.executions else
                  f"; ops of {self.detailed} kept (cap {self.max_slices} op slices per run: evenly spaced "
                  f"executions and the slowest), the others as their Method::execute span")
        moved = f"; {self.clamped} slices moved inside their parent" if self.clamped else ""
        return (f"trace written to {self.path} ({self.bytes / 1e6:.2f} MB): {self.executions} executions in "
                f"{self.timelines} process{'es' if self.timelines != 1 else ''}{capped}{moved}")


def chrome_trace(timelines: Sequence[Timeline]) -> dict[str, Any]:
    """The trace-event JSON object of ``timelines``, one process each."""
    events: list[dict[str, Any]] = []
    for pid, timeline in enumerate(timelines, start=1):
        events += _process(pid, timeline)
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": _metadata(timelines)}


def write_trace(path: Path, timelines: Sequence[Timeline]) -> TraceSummary:
    """Write ``timelines`` to ``path`` as a compact Chrome trace.

    Raises:
        InputError: the path cannot be written.
    """
    text = json.dumps(chrome_trace(timelines), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        write_text_atomic(path, text)
    except OSError as error:
        raise InputError(f"{path}: cannot write the trace ({error.strerror or error})") from None
    return TraceSummary(path, sum(len(t.executions) for t in timelines), sum(t.detailed for t in timelines),
                        len(timelines), len(text.encode()), sum(t.clamped for t in timelines),
                        max((t.max_slices for t in timelines if t.max_slices is not None), default=None))


def _process(pid: int, timeline: Timeline) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [
        _meta(pid, "process_name", {"name": f"{timeline.label} on {timeline.device}"}),
        _meta(pid, "process_sort_index", {"sort_index": pid}),
        _meta(pid, "thread_name", {"name": "executions"}),
    ]
    if timeline.load is not None:
        events.append(_slice(pid, "Program::load_method", "rt", *timeline.load))
    for execution in timeline.executions:
        events += _execution(pid, execution)
    events += _counters(pid, timeline.samples)
    return events


def _execution(pid: int, execution: Execution) -> list[dict[str, Any]]:
    args: dict[str, Any] = {"n": execution.index, "ms": round(execution.ms, 4)}
    if execution.warmup:
        args["warmup"] = True
    if not execution.slices:
        args["ops"] = "not kept (cap)"
    span = _slice(pid, "Method::execute", "run", execution.start_ns, execution.end_ns)
    span["args"] = args
    return [span] + [_slice(pid, s.name, CATEGORIES[s.kind], s.start_ns, s.end_ns) for s in execution.slices]


def _slice(pid: int, name: str, category: str, start_ns: int, end_ns: int) -> dict[str, Any]:
    start, end = _tenths(start_ns), _tenths(end_ns)  # rounding both ends keeps children inside their parents
    return {"ph": "X", "name": name, "cat": category, "ts": _us(start), "dur": _us(end - start), "pid": pid,
            "tid": THREAD}


def _counters(pid: int, samples: Sequence[Sample]) -> list[dict[str, Any]]:
    events = []
    for name, unit, read in COUNTERS:
        for sample in samples:
            value = read(sample)
            if value is not None:
                events.append({"ph": "C", "name": name, "ts": _us(_tenths(round(sample.t_s * 1e9))), "pid": pid,
                               "args": {unit: round(value, 3)}})
    return events


def _meta(pid: int, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"ph": "M", "name": name, "pid": pid, "tid": THREAD, "args": args}


def _tenths(ns: int) -> int:
    """Tenths of a microsecond."""
    return round(ns / 100)


def _us(tenths: int) -> float | int:
    return tenths // 10 if tenths % 10 == 0 else tenths / 10


def _metadata(timelines: Sequence[Timeline]) -> dict[str, Any]:
    return {
        "tool": "rebirth",
        "clock": "µs since the runtime started (ExecuTorch's ticks, ns), rounded to 0.1 µs; each process is its "
                 "own run of the runner, on its own clock",
        "processes": [{
            "pid": pid, "label": t.label, "device": t.device, "executions": len(t.executions),
            "warmups": sum(e.warmup for e in t.executions), "executions_with_ops": t.detailed,
            "op_slices": t.slices, "cap_op_slices": t.max_slices,
            "cap": ("none needed" if t.detailed == len(t.executions) else
                    "ops of evenly spaced executions and the slowest kept; the others as their span only"),
            "clamped_slices": t.clamped, "samples": len(t.samples),
            "counters": [name for name, _, read in COUNTERS if any(read(s) is not None for s in t.samples)],
            "sample_alignment": t.alignment,
        } for pid, t in enumerate(timelines, start=1)],
    }
