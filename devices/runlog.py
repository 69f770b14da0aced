"""Parse a runner's log: ExecuTorch's native ``executor_runner`` or rebirth's Python one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

_LOADED = re.compile(r"Model loaded in ([\d.]+) ms")
_EXECUTED = re.compile(r"Model executed successfully (\d+) time\(s\) in ([\d.]+) ms")
_ITERATION = re.compile(r"(Warm-up|Execution) (\d+)/(\d+) in ([\d.]+) ms")
_BASELINE = re.compile(r"Baseline RSS: (\d+) bytes")
_PEAK = re.compile(r"Peak RSS: (\d+) bytes")
_MISSING_OP = re.compile(r"Missing operator: \[\d+\] ([\w:.]+)")


@dataclass(frozen=True)
class RunLog:
    """What a runner said about its run."""

    load_ms: Optional[float] = None
    executions: Optional[int] = None
    total_ms: Optional[float] = None
    execution_ms: tuple[float, ...] = ()
    baseline_rss_bytes: Optional[int] = None
    peak_rss_bytes: Optional[int] = None


def parse_log(text: str) -> RunLog:
    """Read the lines we know from a runner's combined output; unknown lines are ignored."""
    load = _search_float(_LOADED, text)
    executed = _EXECUTED.search(text)
    timings = tuple(float(m.group(4)) for m in _ITERATION.finditer(text) if m.group(1) == "Execution")
    baseline = _BASELINE.search(text)
    peak = _PEAK.search(text)
    return RunLog(
        load_ms=load,
        executions=int(executed.group(1)) if executed else None,
        total_ms=float(executed.group(2)) if executed else None,
        execution_ms=timings,
        baseline_rss_bytes=int(baseline.group(1)) if baseline else None,
        peak_rss_bytes=int(peak.group(1)) if peak else None,
    )


def progress_of(line: str) -> Optional[tuple[int, int]]:
    """``(done, total)`` for a per-execution line, else None."""
    match = _ITERATION.search(line)
    return (int(match.group(2)), int(match.group(3))) if match else None


def iteration_ms(line: str) -> Optional[float]:
    """The milliseconds of a per-execution line, else None."""
    match = _ITERATION.search(line)
    return float(match.group(4)) if match else None


def missing_operators(text: str) -> list[str]:
    """Operators the runtime reported missing, in order, without repeats."""
    return list(dict.fromkeys(_MISSING_OP.findall(text)))


def _search_float(pattern: re.Pattern, text: str) -> Optional[float]:
    match = pattern.search(text)
    return float(match.group(1)) if match else None
