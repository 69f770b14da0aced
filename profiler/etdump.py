"""The runs of an ETDump as the runtime wrote them, read in place (no executorch import).

The tables are those of ``executorch/devtools/etdump/etdump_schema_flatcc.fbs``, in its field order; only
what the Inspector reads to time events is kept (no tensors, no allocations).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rebirth.models.flatbuffer import FlatbufferError, Layout, Table, root

IDENTIFIER = b"ED00"

ETDUMP = Layout("ETDump", ("version", "run_data"))
RUN_DATA = Layout("RunData", ("name", "bundled_input_index", "allocators", "events"))
EVENT = Layout("Event", ("profile_event", "allocation_event", "debug_event"))
PROFILE_EVENT = Layout("ProfileEvent", ("name", "chain_index", "instruction_id", "delegate_debug_id_int",
                                        "delegate_debug_id_str", "delegate_debug_metadata", "start_time",
                                        "end_time"))
DEBUG_EVENT = Layout("DebugEvent", ("chain_index", "instruction_id", "debug_entry", "delegate_debug_id_int",
                                    "delegate_debug_id_str", "name"))
VALUE = Layout("Value", ("val", "tensor", "tensor_list", "int_value", "float_value", "double_value", "bool_value",
                         "output"))
BOOL = Layout("Bool", ("bool_val",))
LAYOUTS = (ETDUMP, RUN_DATA, EVENT, PROFILE_EVENT, DEBUG_EVENT, VALUE, BOOL)


@dataclass(frozen=True)
class RunEvent:
    """One ProfileEvent or DebugEvent of a run; absent ids keep the schema's defaults (-1, None)."""

    profiled: bool
    """A ProfileEvent (with times); else a DebugEvent."""
    name: Optional[str]
    chain_index: int
    instruction_id: int
    delegate_debug_id_int: int
    delegate_debug_id_str: Optional[str]
    start_time: int = 0
    end_time: int = 0
    run_output: bool = False
    """A DebugEvent that holds an output of the run, not of an instruction."""


@dataclass(frozen=True)
class RunData:
    """One block of events (``Method::init`` and ``Program::load_method``, or one execution)."""

    name: str
    bundled_input_index: int
    events: Optional[tuple[RunEvent, ...]]


def read_runs(data: bytes) -> tuple[RunData, ...]:
    """The runs of a size-prefixed ETDump, in the order written.

    Raises:
        FlatbufferError: the bytes are not an ETDump, or an event is neither profiled nor a debug event.
    """
    runs = root(data, ETDUMP, IDENTIFIER, size_prefixed=True).tables("run_data", RUN_DATA)
    if runs is None:
        raise FlatbufferError("the ETDump has no run_data")
    return tuple(_run(run) for run in runs)


def _run(run: Table) -> RunData:
    name = run.string("name")
    if name is None:
        raise FlatbufferError("a RunData has no name")
    events = run.tables("events", EVENT)
    return RunData(name, run.scalar("bundled_input_index", "<i", -1),
                   None if events is None else tuple(_event(event) for event in events))


def _event(event: Table) -> RunEvent:
    profile = event.table("profile_event", PROFILE_EVENT)
    if profile is not None:
        return RunEvent(True, profile.string("name"), profile.scalar("chain_index", "<i"),
                        profile.scalar("instruction_id", "<i", -1), profile.scalar("delegate_debug_id_int", "<i", -1),
                        profile.string("delegate_debug_id_str"), profile.scalar("start_time", "<Q"),
                        profile.scalar("end_time", "<Q"))
    debug = event.table("debug_event", DEBUG_EVENT)
    if debug is None:
        raise FlatbufferError("an event is neither a profile nor a debug event")
    entry = debug.table("debug_entry", VALUE)
    if entry is None:
        raise FlatbufferError("a debug event has no debug entry")
    output = entry.table("output", BOOL)
    return RunEvent(False, debug.string("name"), debug.scalar("chain_index", "<Q"),
                    debug.scalar("instruction_id", "<i", -1), debug.scalar("delegate_debug_id_int", "<i", -1),
                    debug.string("delegate_debug_id_str"),
                    run_output=output is not None and bool(output.scalar("bool_val", "<?", False)))
