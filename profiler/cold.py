"""The cold start of a program on a device: N fresh runner processes, each started with the model's file dropped
from the page cache where the device allows it, untraced (the event tracer would inflate the load and the first
inference), with no warm-up, timing a few executions: the load's phases, the first inference and the warm-up
curve, each a distribution over the processes."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from rebirth.contract import notes
from rebirth.contract.cold import ColdStart, Distribution, distribution
from rebirth.contract.notes import Note
from rebirth.devices import Device, ProgressCallback, RunRequest, RunResult

COLD_EXECUTIONS = 5
"""Executions timed in each fresh process by default: the first inference and the warm-up curve after it."""

Run = Callable[[Device, RunRequest, Path], RunResult]


def cold_requests(model_path: Path, runs: int, executions: int, threads: Optional[int] = None) -> list[RunRequest]:
    """One request per fresh process: no warm-up, untraced, the page cache dropped first."""
    if runs < 1 or executions < 1:
        raise ValueError(f"a cold start needs at least one process and one execution, not {runs} and {executions}")
    request = RunRequest(model_path, iterations=executions, warmup=0, threads=threads, etdump=False,
                         drop_page_cache=True)
    return [request] * runs


def measure_cold(device: Device, requests: list[RunRequest], run: Run,
                 progress: Optional[ProgressCallback] = None) -> ColdStart:
    """Run each request in its own runner process on ``device`` (``run`` is how: the profiler's error mapping)
    and gather the phases."""
    results = []
    for done, request in enumerate(requests, 1):
        with tempfile.TemporaryDirectory(prefix="rebirth-cold-") as workdir:
            results.append(run(device, request, Path(workdir)))
        if progress:
            progress("cold", done, len(requests))
    return cold_start(results, requests[0].iterations)


def cold_start(results: list[RunResult], executions: int) -> ColdStart:
    """The ColdStart of the runs of fresh processes (``results``, at least one) that timed ``executions`` each."""
    logs = [result.log for result in results]
    curve = _curve([log.execution_ms for log in logs], executions)
    program_load = distribution([log.program_load_ms for log in logs])
    flushed = all(result.page_cache_flushed for result in results)
    said = [note for result in results for note in result.notes if note.code == notes.NOT_FLUSHED]
    if program_load is None:
        said.append(Note(notes.NO_PHASES, "the runner does not say the load's phases (\"Program loaded in\", "
                                          "\"Method loaded in\"): only the whole load is shown"))
    if not curve:
        said.append(Note(notes.NO_PHASES, "the runner does not log each execution's time: no first inference, no "
                                          "warm-up curve"))
    return ColdStart(runs=len(results), executions=executions, program_load=program_load,
                     method_load=distribution([log.method_load_ms for log in logs]),
                     load=distribution([log.load_ms for log in logs]), curve=curve, page_cache_flushed=flushed,
                     notes=tuple(dict.fromkeys(said)))


def _curve(timings: list[tuple[float, ...]], executions: int) -> tuple[Distribution, ...]:
    """Execution i of every process, for each i that every process timed."""
    length = min(min(len(each) for each in timings), executions)
    return tuple(Distribution.of([each[index] for each in timings]) for index in range(length))
