"""Op events out of an ETDump as plain records, grouped and timed as ExecuTorch's Inspector does it.

The ETDump is read in place (``profiler.etdump``), not through the Inspector, whose import brings in
ExecuTorch's compiler and torch (seconds before the first number). What the Inspector does with the runs is
done the same way here (``executorch/devtools/inspector/_inspector.py``: ``EventBlock._gen_from_etdump``):
events are keyed by instruction and delegate ids within a run; runs with the same sequence of keys form one
block, each key one event with one sample per run; a delegated event is named by its delegate debug id; times
go from nanoseconds to milliseconds. tests/test_fast_readers.py holds this to the Inspector's result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from rebirth.contract.errors import EmptyETDumpError, ModelFileError
from rebirth.profiler.etdump import RunData, RunEvent, read_runs

REBUILD_HINT = (
    "the runner was built without the event tracer; rebuild it with "
    "-DEXECUTORCH_BUILD_DEVTOOLS=ON -DEXECUTORCH_ENABLE_EVENT_TRACER=ON"
)

LOAD_EVENTS = ("Method::init", "Program::load_method")

NS_PER_MS = 1_000_000_000 / 1_000
"""The Inspector's scale from the runtime's nanoseconds to milliseconds (a float, as it divides by it)."""
MAX_UINT32 = 2**32 - 1


@dataclass(frozen=True)
class TraceEvent:
    """One profiled event with one sample per execution, in the order they ran."""

    name: str
    instruction: int
    raw_ms: tuple[float, ...]
    delegated: bool
    """Ran inside a delegate call (an XNNPACK operator), not as a kernel of the program."""
    position: int


@dataclass(frozen=True)
class Trace:
    """The events of the ``Execute`` block and the load events of one ETDump."""

    events: tuple[TraceEvent, ...]
    load_events: tuple[TraceEvent, ...]

    @property
    def executions(self) -> int:
        """How many times the method ran (samples of ``Method::execute``)."""
        execute = self.find("Method::execute")
        return len(execute.raw_ms) if execute else max((len(e.raw_ms) for e in self.events), default=0)

    def find(self, name: str) -> Optional[TraceEvent]:
        return next((event for event in self.events if event.name == name), None)


def read_trace(etdump_path: str | Path) -> Trace:
    """Parse an ETDump written by any runner (the Python one or ExecuTorch's native one).

    Raises:
        EmptyETDumpError: the file is empty or holds no profiling events.
        ModelFileError: the file is not an ETDump.
    """
    path = Path(etdump_path)
    if not path.exists() or path.stat().st_size == 0:
        raise EmptyETDumpError(f"{path}: empty ETDump: {REBUILD_HINT}")
    try:
        timed = [event for block in event_blocks(read_runs(path.read_bytes())) for event in block]
    except ValueError as error:
        raise ModelFileError(f"{path}: not a readable ETDump ({type(error).__name__}: {error})") from None
    events: list[TraceEvent] = []
    load_events: list[TraceEvent] = []
    for event in timed:
        target = load_events if event.name in LOAD_EVENTS else events
        target.append(TraceEvent(event.name, event.instruction, event.raw_ms, event.delegated, len(target)))
    if not events:
        raise EmptyETDumpError(f"{path}: the ETDump has no profiling events: {REBUILD_HINT}")
    return Trace(tuple(events), tuple(load_events))


@dataclass(frozen=True)
class _Signature:
    """The Inspector's ProfileEventSignature or DebugEventSignature: unset ids (-1, "") are None."""

    name: str
    instruction_id: Optional[int]
    delegate_id: Optional[int]
    delegate_id_str: Optional[str]

    @classmethod
    def of(cls, event: RunEvent) -> _Signature:
        return cls(event.name or "", event.instruction_id if event.instruction_id != -1 else None,
                   event.delegate_debug_id_int if event.delegate_debug_id_int != -1 else None,
                   event.delegate_debug_id_str if event.delegate_debug_id_str != "" else None)

    def named(self, name: str) -> tuple[str, bool]:
        """The event's name once this signature is applied, and whether it is a delegated op."""
        identifier = self.delegate_id if self.delegate_id is not None else (self.delegate_id_str or None)
        delegated = identifier is not None
        return (str(identifier) if delegated else self.name) or name, delegated


_EventKey = tuple[int, Optional[_Signature], Optional[_Signature]]
"""The Inspector's EventSignature: the instruction id, the profile and the debug event signatures."""


@dataclass
class _Instruction:
    """The events of one run with the same instruction, chain and delegate ids (the Inspector's
    InstructionEvent), run outputs left out."""

    profiled: list[RunEvent] = field(default_factory=list)
    debug: list[RunEvent] = field(default_factory=list)


def event_blocks(runs: Sequence[RunData]) -> list[list[TraceEvent]]:
    """The timed events of each event block, as the Inspector's ``event_blocks`` (``position`` is the
    event's index in its block; events without samples are left out).

    Raises:
        ValueError: an event ends before it starts beyond what a 32-bit clock wrapping round explains.
    """
    groups: dict[tuple, dict[_EventKey, list[Optional[RunEvent]]]] = {}
    for run in runs:
        if run.events is None:
            continue
        keys = _run_keys(run.events)
        block = groups.setdefault((run.name, tuple(keys), run.bundled_input_index), {})
        for key, event in keys.items():
            block.setdefault(key, []).append(event)
    return [_timed_events(block) for block in groups.values()]


def _run_keys(events: Sequence[RunEvent]) -> dict[_EventKey, Optional[RunEvent]]:
    """Each event signature of one run and its profile event (the last one of that signature)."""
    instructions: dict[tuple, _Instruction] = {}
    for event in events:
        key = (event.instruction_id, event.chain_index, event.delegate_debug_id_int, event.delegate_debug_id_str)
        collected = instructions.setdefault(key, _Instruction())
        if event.profiled:
            collected.profiled.append(event)
        elif not event.run_output:
            collected.debug.append(event)
    keys: dict[_EventKey, Optional[RunEvent]] = {}
    for (instruction_id, *_), collected in instructions.items():
        debug = _Signature.of(collected.debug[0]) if collected.debug else None
        if not collected.profiled:
            if debug is not None:
                keys[(instruction_id, None, debug)] = None
            continue
        for event in collected.profiled:
            keys[(instruction_id, _Signature.of(event), debug)] = event
    return keys


def _timed_events(block: dict[_EventKey, list[Optional[RunEvent]]]) -> list[TraceEvent]:
    events = []
    for position, ((instruction_id, profiled, debug), samples) in enumerate(block.items()):
        name, delegated = profiled.named("") if profiled else ("", False)
        raw = tuple(_elapsed_ms(event, delegated) for event in samples if event is not None)
        if debug is not None:
            name, delegated = debug.named(name)
        if raw:
            events.append(TraceEvent(name, int(instruction_id or 0), raw, delegated, position))
    return events


def _elapsed_ms(event: RunEvent, delegated: bool) -> float:
    # The Inspector scales a delegated event's ends before subtracting them, and an operator's difference.
    if delegated:
        return float(_elapsed(event.start_time / NS_PER_MS, event.end_time / NS_PER_MS))
    return float(_elapsed(event.start_time, event.end_time)) / NS_PER_MS


def _elapsed(start: float, end: float) -> float:
    if start > end:
        if start > MAX_UINT32 or end > MAX_UINT32:
            raise ValueError(f"an event ends ({end}) before it starts ({start})")
        return (MAX_UINT32 - start) + end
    return end - start
