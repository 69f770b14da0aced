"""Op events out of an ETDump, through ExecuTorch's Inspector, as plain records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rebirth.contract.errors import EmptyETDumpError, ModelFileError
from rebirth.contract.quiet import quiet

REBUILD_HINT = (
    "the runner was built without the event tracer; rebuild it with "
    "-DEXECUTORCH_BUILD_DEVTOOLS=ON -DEXECUTORCH_ENABLE_EVENT_TRACER=ON"
)

LOAD_EVENTS = ("Method::init", "Program::load_method")


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
    from executorch.devtools import Inspector

    try:
        with quiet():
            inspector = Inspector(etdump_path=str(path))
    except Exception as error:  # the flatcc parser raises assorted types on garbage
        raise ModelFileError(f"{path}: not a readable ETDump ({type(error).__name__}: {error})") from None
    events: list[TraceEvent] = []
    load_events: list[TraceEvent] = []
    for block in inspector.event_blocks:
        for event in block.events:
            if event.perf_data is None:
                continue
            target = load_events if event.name in LOAD_EVENTS else events
            target.append(TraceEvent(event.name, int(event._instruction_id or 0),
                                     tuple(float(x) for x in event.perf_data.raw),
                                     bool(event.is_delegated_op), len(target)))
    if not events:
        raise EmptyETDumpError(f"{path}: the ETDump has no profiling events: {REBUILD_HINT}")
    return Trace(tuple(events), tuple(load_events))
