"""A run as a timeline: every execution's op slices with their start and end on the runtime's clock, and the
device's readings while it ran. Read from the ETDump while it exists (``profiler.timeline``), written as a
Chrome trace (``reports.chrome_trace``) and drawn in the HTML report; never stored in the result store, whose
Profile keeps the aggregates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rebirth.contract.device import Sample

EXECUTE, CALL, KERNEL, DELEGATED = "execute", "call", "kernel", "delegated"
"""Kinds of slice: ``Method::execute``; a framework call inside it (``DELEGATE_CALL``, ``OPERATOR_CALL``); a
kernel of the program (``native_call_*``); an op inside a delegate call (an XNNPACK operator)."""


@dataclass(frozen=True)
class Slice:
    """One timed event of one execution, nested properly in its parent (``Timeline.clamped`` counts the ends
    that had to be moved into it)."""

    name: str
    kind: str
    category: str
    """``tensor``, ``non_tensor`` or ``framework`` (``profiler.taxonomy``)."""
    start_ns: int
    end_ns: int
    depth: int
    """0 for ``Method::execute``, 1 for the calls in it, 2 for the kernel or delegate ops in a call."""


@dataclass(frozen=True)
class Execution:
    """One run of the method; ``slices`` is empty when only its span was kept (``Timeline.detailed``)."""

    index: int
    warmup: bool
    start_ns: int
    end_ns: int
    slices: tuple[Slice, ...] = ()

    @property
    def ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@dataclass(frozen=True)
class Timeline:
    """One run of one program on one device, as a timeline.

    Times are the runtime's ticks in nanoseconds since it started (ExecuTorch's POSIX clock; checked against
    the runner's own timing), so the sample times (seconds since the runner started) line up with them to
    within the runner's start-up: approximately (``alignment``).
    """

    label: str
    """What ran (``A: zoo:googlenet``, ``before``, a farm's device name)."""
    device: str
    executions: tuple[Execution, ...]
    samples: tuple[Sample, ...] = ()
    load: Optional[tuple[int, int]] = None
    """The program's load (``Program::load_method``) start and end, when the ETDump has it."""
    clamped: int = 0
    """Slices whose start or end lay outside their parent or overlapped the slice before them, moved inside."""
    max_slices: Optional[int] = None
    """The cap on op slices this timeline was read with (None: none)."""
    alignment: str = ("samples placed at their time since the runner started, on the runtime's clock that starts "
                      "when the runtime initialises: approximate, within the runner's start-up")

    @property
    def detailed(self) -> int:
        """How many executions kept their op slices; the others kept their ``Method::execute`` span only."""
        return sum(1 for execution in self.executions if execution.slices)

    @property
    def slices(self) -> int:
        return sum(len(execution.slices) for execution in self.executions)
