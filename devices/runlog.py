"""Parse a runner's log: ExecuTorch's native ``executor_runner`` or rebirth's own runners; and what a
failed run's output says went wrong."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from rebirth.contract.errors import ModelRejectedError, RunnerError

EXIT_LOAD_FAILED = 3
"""rebirth's runners exit with this when the program or its method does not load."""
EXIT_RUN_FAILED = 4

_LOADED = re.compile(r"Model loaded in ([\d.]+) ms")
_PROGRAM_LOADED = re.compile(r"Program loaded in ([\d.]+) ms")
_METHOD_LOADED = re.compile(r"Method loaded in ([\d.]+) ms")
_EXECUTED = re.compile(r"Model executed successfully (\d+) time\(s\) in ([\d.]+) ms")
_ITERATION = re.compile(r"(Warm-up|Execution) (\d+)/(\d+) in ([\d.]+) ms")
_PAIRED = re.compile(r"Paired execution (\d+)/(\d+) in ([\d.]+) ms")
_BASELINE = re.compile(r"Baseline RSS: (\d+) bytes")
_PEAK = re.compile(r"Peak RSS: (\d+) bytes")
_MISSING_OP = re.compile(r"Missing operator: \[\d+\] ([\w:.]+)")


@dataclass(frozen=True)
class RunLog:
    """What a runner said about its run."""

    text: str = ""
    """The whole log, as it came."""
    load_ms: Optional[float] = None
    """The whole load ("Model loaded in"): the program, its method and the inputs."""
    program_load_ms: Optional[float] = None
    """``Program::load``: the file opened and the program read and verified; None from a runner that does not
    say (ExecuTorch's executor_runner, rebirth's runners before they said it)."""
    method_load_ms: Optional[float] = None
    """``Program::load_method``: the method's memory and ``Method::init``, where each delegate sets up (XNNPACK
    builds its runtime and packs its weights); None where the runner does not say."""
    executions: Optional[int] = None
    total_ms: Optional[float] = None
    execution_ms: tuple[float, ...] = ()
    paired_execution_ms: tuple[float, ...] = ()
    """The second program's timed executions, when the runner ran two side by side."""
    warmups: int = 0
    """Warm-up lines: 0 from a runner that was not told of warm-ups (they are among its executions)."""
    baseline_rss_bytes: Optional[int] = None
    peak_rss_bytes: Optional[int] = None


def parse_log(text: str) -> RunLog:
    """Read the lines we know from a runner's combined output; unknown lines are ignored."""
    load = _search_float(_LOADED, text)
    executed = _EXECUTED.search(text)
    timings = tuple(float(m.group(4)) for m in _ITERATION.finditer(text) if m.group(1) == "Execution")
    paired = tuple(float(m.group(3)) for m in _PAIRED.finditer(text))
    baseline = _BASELINE.search(text)
    peak = _PEAK.search(text)
    return RunLog(
        text=text,
        load_ms=load,
        program_load_ms=_search_float(_PROGRAM_LOADED, text),
        method_load_ms=_search_float(_METHOD_LOADED, text),
        executions=int(executed.group(1)) if executed else None,
        total_ms=float(executed.group(2)) if executed else None,
        execution_ms=timings,
        paired_execution_ms=paired,
        warmups=sum(1 for m in _ITERATION.finditer(text) if m.group(1) == "Warm-up"),
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


def report_progress(line: str, warmup: int, iterations: int, progress: Optional[Callable[[str, int, int], None]]
                    ) -> Optional[tuple[int, int]]:
    """Tell ``progress`` about a per-execution line (``warmup`` or ``run`` stage); ``(done, total)`` of it."""
    done = progress_of(line)
    if done and progress:
        if done[0] <= warmup:
            progress("warmup", done[0], warmup)
        else:
            progress("run", done[0] - warmup, iterations)
    return done


def missing_operators(text: str) -> list[str]:
    """Operators the runtime reported missing, in order, without repeats."""
    return list(dict.fromkeys(_MISSING_OP.findall(text)))


def _search_float(pattern: re.Pattern, text: str) -> Optional[float]:
    match = pattern.search(text)
    return float(match.group(1)) if match else None


def signal_of(code: int) -> Optional[str]:
    """The signal that ended a process, from its exit status as Python (``-N``) or a shell (``128+N``)
    reports it; None for a normal exit."""
    number = -code if code < 0 else code - 128 if 128 < code < 128 + 65 else None
    if number is None:
        return None
    try:
        return f"{signal.Signals(number).name} (signal {number})"
    except ValueError:
        return f"signal {number}"


_START_FAILURES = (
    (r"error while loading shared libraries: (\S+?):", "a library it needs is missing on the device: {0}"),
    (r"Error: this device is (\S+), not arm64", "the device is {0}, not arm64: the arm64-v8a runner cannot run"),
    (r"(?:Exec format error|cannot execute binary file)", "the runner is not built for this device's ABI"),
    (r"ld-linux\S*: (?:No such file|not found)", "the runner's loader (ld-linux-aarch64.so.1) is missing"),
    (r"Bad system call", "the device's seccomp filter stopped the runner (a system call glibc makes is forbidden "
                         "there; the launcher sets GLIBC_TUNABLES=glibc.pthread.rseq=0)"),
)


def diagnose(output: str, code: int) -> Optional[str]:
    """What kept a runner from starting on a device, from its output and exit status: a library, the ABI,
    the loader or the phone's seccomp filter; None when nothing says so."""
    for pattern, message in _START_FAILURES:
        match = re.search(pattern, output)
        if match:
            return message.format(*match.groups())
    if code == 128 + signal.SIGSYS or code == -signal.SIGSYS:
        return _START_FAILURES[-1][1]
    return None


def runner_failure(device: str, command: str, code: int, output: str) -> RunnerError:
    """The error for a runner that exited with ``code``: the model's fault or the device's."""
    start = diagnose(output, code)
    if start:
        return RunnerError(f"the runner could not start on {device}: {start}", device=device, step="start",
                           command=command, exit_code=code, output=output)
    killed = signal_of(code)
    if killed:
        return RunnerError(f"the runner was killed by {killed} on {device}: {last_error(output)}", device=device,
                           step="run", command=command, exit_code=code, output=output)
    missing = missing_operators(output)
    if missing:
        return ModelRejectedError(
            f"the model needs operator{'s' if len(missing) > 1 else ''} {', '.join(missing)}, "
            "which the runtime was not built with", device=device, step="run", command=command,
            exit_code=code, output=output)
    if code == EXIT_LOAD_FAILED:
        hint = "; was the .pte made by another executorch version?" if "InvalidProgram" in output else ""
        return ModelRejectedError(f"the runtime could not load the model: {last_error(output)}{hint}",
                                  device=device, step="load", command=command, exit_code=code, output=output)
    return RunnerError(f"the runner failed on {device} (exit {code}): {last_error(output)}", device=device,
                       step="run", command=command, exit_code=code, output=output)


def last_error(output: str) -> str:
    """The line of a runner's output that best says what went wrong."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:") or "error" in line.lower()]
    return (errors or lines or ["no output"])[-1]
