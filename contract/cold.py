"""The cold start of a program: N fresh runner processes, each timed from the load to its first executions.

A steady-state profile says what an inference costs once the app is running; an app's user also waits for
the model to load, for its delegate to set up and for the first inferences, which are slower (caches, the
delegate's first call, the page cache). Each phase is a distribution over the processes: its raw values,
median and the 95% interval of the median (``stats.median_interval``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from rebirth.contract import stats
from rebirth.contract.notes import Note

PHASES = ("program load", "method init", "load (total)", "first inference")
"""The phases of a start, as reports name them (``ColdStart.phases``)."""


@dataclass(frozen=True)
class Distribution:
    """Values of one phase in milliseconds, one per process, with their median and its 95% interval."""

    raw: tuple[float, ...]
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, raw: Sequence[float]) -> Distribution:
        """The distribution of ``raw`` (at least one value)."""
        low, high = stats.median_interval(raw)
        return cls(tuple(float(value) for value in raw), stats.percentile(raw, 50), low, high)


@dataclass(frozen=True)
class ColdStart:
    """Phases of a program's start in fresh processes; a phase the runner does not report is None."""

    runs: int
    """Fresh runner processes, each with no warm-up."""
    executions: int
    """Executions timed in each process: the warm-up curve's length."""
    program_load: Optional[Distribution] = None
    """``Program::load``: the file opened, the program read and verified."""
    method_load: Optional[Distribution] = None
    """``Program::load_method``: the method's memory and ``Method::init``, the delegates' set-up."""
    load: Optional[Distribution] = None
    """The whole load as the runner says it ("Model loaded in"), inputs included."""
    curve: tuple[Distribution, ...] = ()
    """Execution 1, 2, ... of each process: the first inference, then the warm-up curve."""
    page_cache_flushed: bool = False
    """The model's file was dropped from the device's page cache before every process."""
    notes: tuple[Note, ...] = ()
    """What a reader must know: where the page cache was not flushed, what the runner does not say."""

    @property
    def first(self) -> Optional[Distribution]:
        """The first inference of each process."""
        return self.curve[0] if self.curve else None

    def phases(self) -> list[tuple[str, Optional[Distribution]]]:
        """(label, distribution) of the load's phases and the first inference, in the order they happen."""
        return list(zip(PHASES, (self.program_load, self.method_load, self.load, self.first)))


def distribution(values: Sequence[Optional[float]]) -> Optional[Distribution]:
    """The distribution of ``values`` when every process reported one, else None."""
    if not values or any(value is None for value in values):
        return None
    return Distribution.of([value for value in values if value is not None])
