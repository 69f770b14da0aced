"""What `rebirth tune` found: run settings (backend, cores, threads) measured side by side against rebirth's
default on one device, each with its latency ratio to the default and the interval of that ratio, and the best
setting, when one is told apart from the default.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rebirth.contract.files import write_json_atomic
from rebirth.contract.records import from_dict, nulls_for_unknown, read_record, unknown_for_nulls

SCHEMA_VERSION = 1

REFERENCE, DECIDED, SLOWER, UNDECIDED = "reference", "decided", "slower", "undecided"
"""A row's status: the default itself; its ratio known to the precision asked; dropped once it was over 1.5x the
default's latency in each of two blocks or more (it cannot be the best); or the budget ran out first."""


@dataclass(frozen=True)
class Setting:
    """How a program runs on a device: the backend it was lowered to, the cores it is pinned to (a core set named
    from the clusters' maximum frequencies: ``big``, ``little``, ``mid``, ``all``), and the runtime's threads."""

    backend: str
    core_set: str
    cores: tuple[int, ...]
    threads: int

    @property
    def cpu_mask(self) -> str:
        """The cores as a hex ``taskset`` mask, as devices.toml's ``cpu_mask`` takes it."""
        return format(sum(1 << core for core in self.cores), "x")

    def __str__(self) -> str:
        return (f"{self.backend}, {self.core_set} cores ({core_list(self.cores)}), {self.threads} "
                f"thread{'s' if self.threads > 1 else ''}")


def core_list(cores: tuple[int, ...]) -> str:
    """``0-3,6``."""
    spans: list[list[int]] = []
    for core in sorted(cores):
        if spans and core == spans[-1][1] + 1:
            spans[-1][1] = core
        else:
            spans.append([core, core])
    return ",".join(f"{low}-{high}" if high > low else f"{low}" for low, high in spans)


@dataclass(frozen=True)
class TunedSetting:
    """One setting measured: its latency, its ratio to the default with the interval, and its memory."""

    setting: Setting
    status: str
    runs: int
    p50_ms: float
    """The median of its runs' p50."""
    ratio: float
    """Its latency over the default's: the geometric mean of the blocks' ratios (below 1: faster)."""
    low: float
    high: float
    peak_rss_bytes: Optional[int] = None
    """The highest of its runs' peak RSS."""
    energy_mj: Optional[float] = None
    """Energy per inference, the median of its runs', where the device measured it."""

    @property
    def faster(self) -> bool:
        """Told apart from the default as faster: the whole interval lies below 1."""
        return self.status != REFERENCE and self.high < 1.0


_BOUNDS = {"ratio": math.nan, "low": 0.0, "high": math.inf, "p50_ms": math.nan}
"""A row's ratio, bounds and p50 where they are not known (a setting never run), as read back from JSON's null."""


@dataclass(frozen=True)
class TuneRecord:
    """Every setting measured on one device for one model, against rebirth's default."""

    model: str
    device: str
    reference: Setting
    rows: tuple[TunedSetting, ...]
    best: Optional[Setting]
    """The fastest setting told apart from the default; None when none is."""
    verdict: str
    notes: tuple[str, ...]
    """What was measured and what was left out (core sets that do not apply, backends fixed by a .pte)."""
    precision: float
    confidence: float
    blocks: int
    seconds: float
    fixed_backend: bool = False
    """The model was a .pte: its backend was not tuned (and is not saved)."""
    schema_version: int = SCHEMA_VERSION

    def row(self, setting: Setting) -> TunedSetting:
        return next(row for row in self.rows if row.setting == setting)

    @property
    def gain(self) -> Optional[tuple[float, float, float]]:
        """The best setting's speed-up over the default and its interval: ``(speedup, low, high)``."""
        if self.best is None:
            return None
        row = self.row(self.best)
        return 1.0 / row.ratio, 1.0 / row.high, 1.0 / row.low

    def to_dict(self) -> dict[str, Any]:
        """JSON has no infinity: an interval not known yet (one block) is written with null bounds."""
        data = dataclasses.asdict(self)
        data["rows"] = [nulls_for_unknown(row, _BOUNDS) for row in data["rows"]]
        return {"schema_version": data.pop("schema_version"), **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuneRecord:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"schema_version {version!r} is not one this rebirth reads")
        rows = [unknown_for_nulls(row, _BOUNDS) for row in data.get("rows", ())]
        return from_dict(cls, dict(data, rows=rows))

    def save(self, path: str | os.PathLike) -> None:
        write_json_atomic(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> TuneRecord:
        """Read a tune.json.

        Raises:
            InputError: the file is missing or is not a tune record.
        """
        return read_record(path, cls.from_dict, "tune record")
