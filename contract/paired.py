"""A paired comparison of two programs on one device: they ran alternately (A B, B A, A B, ...) so that
drift, load and heat hit both alike, until the question asked was answered or the budget spent.

The record keeps every run's latency and memory; the ratio and its interval come from the pairs.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rebirth.contract.checks import UNDECIDED
from rebirth.contract.files import write_json_atomic
from rebirth.contract.notes import Note, from_text
from rebirth.contract.records import from_dict, nulls_for_unknown, read_record, unknown_for_nulls

SCHEMA_VERSION = 2
"""2: a run's noise is notes (a code and its text), not bare text."""

_UNBOUNDED = {"ratio": math.nan, "low": 0.0, "high": math.inf}
"""The ratio and bounds of a comparison that no kept block bounds, as read back from JSON's null."""

DECIDED = "decided"
"""The outcome of a precision question once the interval is as narrow as asked; ``undecided`` when the budget
ran out first. A threshold question ends as a latency check does (``checks.decide``): pass, regression,
improvement or undecided."""


@dataclass(frozen=True)
class PairedRun:
    """One run of one side: the statistic of its samples, their spread, its memory and its noise."""

    side: str
    """``a`` or ``b``."""
    block: int
    latency_ms: float
    cv: float
    peak_rss_bytes: Optional[int] = None
    noise: tuple[Note, ...] = ()
    temperature_c: Optional[float] = None
    """The hottest zone when the run started."""
    freq_khz_low: Optional[int] = None
    """The lowest and highest clock of the runner's cores sampled while it executed."""
    freq_khz_high: Optional[int] = None
    waited_s: float = 0.0
    """How long the device was let cool before the run (the first run of a block)."""
    discarded: Optional[str] = None
    """Why the block this run is in was left out of the ratio (its clocks moved, it throttled, the device was
    too hot), or None: it counts."""


@dataclass(frozen=True)
class Question:
    """What the measurement must decide: the ratio to a relative ``precision`` (half-width of its interval),
    or, with a ``threshold``, whether B is slower than A by more than it."""

    precision: float = 0.02
    threshold: Optional[float] = None

    def __str__(self) -> str:
        if self.threshold is not None:
            return f"is B slower than A by more than {self.threshold:.0%}?"
        return f"the ratio to ±{self.precision:.0%}"


@dataclass(frozen=True)
class Budget:
    """How much measuring a comparison may do before it says it is undecided."""

    max_runs: int = 40
    """Runs of both sides together."""
    max_seconds: float = 600.0
    min_blocks: int = 4
    """Blocks measured before any answer is taken: fewer cannot show the run-to-run noise."""


@dataclass(frozen=True)
class PairedComparison:
    """Latency of B over A on one device, from alternating runs."""

    a: str
    b: str
    device: str
    statistic: str
    """The per-run statistic compared (``p50``)."""
    question: Question
    budget: Budget
    runs: tuple[PairedRun, ...]
    blocks: int
    ratio: float
    """B's latency over A's: the geometric mean of the blocks' ratios (below 1: B is faster)."""
    low: float
    high: float
    confidence: float
    outcome: str
    reason: str
    seconds: float
    in_process: bool = False
    """Each block ran both programs in one process, executions alternating (rebirth's runner), rather than
    as two runs back to back."""
    energy_ratio: Optional[float] = None
    """B's energy per inference over A's, from one traced run of each (None where not measured)."""
    energy_low: Optional[float] = None
    energy_high: Optional[float] = None
    energy_note: Optional[str] = None
    """Why there is no energy ratio, or how it was made."""
    schema_version: int = SCHEMA_VERSION

    @property
    def how(self) -> str:
        """How the pairs were made, in words."""
        if self.in_process:
            return f"{self.blocks} blocks, each a run alternating A's and B's executions on {self.device}"
        return f"{self.blocks} blocks of A and B runs back to back on {self.device}"

    @property
    def discarded(self) -> dict[str, int]:
        """How many blocks were left out of the ratio, by reason."""
        reasons: dict[int, str] = {}
        for run in self.runs:
            if run.discarded:
                reasons.setdefault(run.block, run.discarded)
        counts: dict[str, int] = {}
        for reason in reasons.values():
            counts[reason] = counts.get(reason, 0) + 1
        return counts

    def discarded_shown(self) -> Optional[str]:
        """``3 blocks discarded: 2 throttled, 1 too hot`` or None."""
        counts = self.discarded
        if not counts:
            return None
        total = sum(counts.values())
        return (f"{total} block{'s' if total != 1 else ''} discarded and re-run: "
                + "; ".join(f"{count} × {reason}" for reason, count in counts.items()))

    @property
    def speedup(self) -> float:
        """A's latency over B's (above 1: B is faster)."""
        return 1.0 / self.ratio

    @property
    def speedup_interval(self) -> tuple[float, float]:
        """A over B's interval (0 to infinity when no block was kept, or only one)."""
        return (1.0 / self.high if math.isfinite(self.high) and self.high > 0 else 0.0,
                1.0 / self.low if self.low > 0 else math.inf)

    @property
    def decided(self) -> bool:
        return self.outcome != UNDECIDED

    def side(self, name: str) -> tuple[PairedRun, ...]:
        """The runs of side ``a`` or ``b`` that count: those of the blocks kept (all of them when none was)."""
        runs = tuple(run for run in self.runs if run.side == name)
        kept = tuple(run for run in runs if not run.discarded)
        return kept or runs

    def to_dict(self) -> dict[str, Any]:
        """JSON has no infinity: an interval no block bounds (none kept, or one) is written with null ends."""
        data = nulls_for_unknown(dataclasses.asdict(self), _UNBOUNDED)
        return {"schema_version": data.pop("schema_version"), **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairedComparison:
        version = data.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ValueError(f"schema_version {version!r} is not one this rebirth reads")
        if version == 1:
            runs = [dict(run, noise=[dataclasses.asdict(from_text(text)) for text in run.get("noise", ())])
                    for run in data.get("runs", ())]
            data = dict(data, runs=runs, schema_version=2)
        return from_dict(cls, unknown_for_nulls(data, _UNBOUNDED))

    def to_dataframe(self):
        """One row per run (pandas): side, block, latency_ms, cv, peak_rss_bytes, noise."""
        import pandas

        return pandas.DataFrame([dataclasses.asdict(run) for run in self.runs],
                                columns=[field.name for field in dataclasses.fields(PairedRun)])

    def save(self, path: str | os.PathLike) -> None:
        write_json_atomic(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> PairedComparison:
        """Read a comparison.json.

        Raises:
            InputError: the file is missing or is not a paired comparison.
        """
        return read_record(path, cls.from_dict, "comparison")
