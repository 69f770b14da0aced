"""The Profile record: the versioned JSON document every part of rebirth exchanges.

Records are frozen dataclasses. ``Profile.save`` writes JSON atomically and ``Profile.load``
migrates files written by older schema versions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rebirth.contract import stats
from rebirth.contract.cold import ColdStart
from rebirth.contract.device import DeviceInfo
from rebirth.contract.errors import InputError
from rebirth.contract.files import write_json_atomic
from rebirth.contract.notes import Note, from_text
from rebirth.contract.records import from_dict

SCHEMA_VERSION = 2
"""2: warnings and noise are notes (a code and its text), not bare text."""

TENSOR, NON_TENSOR, FRAMEWORK = "tensor", "non_tensor", "framework"
CATEGORIES = (TENSOR, NON_TENSOR, FRAMEWORK)


@dataclass(frozen=True)
class ModelInfo:
    """The .pte that was profiled and where it came from."""

    path: str
    sha256: str
    """Of the .pte's bytes: two profiles of the same sha256 ran the same program."""
    size_bytes: int
    backend: str
    """``portable`` or ``xnnpack``: the backend the program was lowered for."""
    source: str
    """The model argument it came from (``zoo:NAME``, ``file.py:NAME``, a .pt2 or the .pte itself)."""
    etrecord: Optional[str] = None


@dataclass(frozen=True, kw_only=True)
class Settings:
    """How the runner was driven."""

    warmup: int
    """Executions run and dropped before the timed ones."""
    iterations: int
    threads: Optional[int] = None
    """The runtime's threads; None: the runtime's default."""
    cpu_affinity: Optional[str] = None
    """The ``taskset`` mask (hex) or core list the runner was pinned to; None: not pinned."""
    cooldown_s: float = 0.0


@dataclass(frozen=True)
class Latency:
    """Per-inference latency in milliseconds, computed from the raw samples it keeps."""

    raw: tuple[float, ...]
    min: float
    p10: float
    p50: float
    p90: float
    mean: float
    std: float
    trimmed_mean: float
    cv: float
    load_ms: Optional[float] = None
    first_ms: Optional[float] = None
    source: str = "etdump"

    @classmethod
    def from_samples(cls, raw: typing.Sequence[float], load_ms: Optional[float] = None,
                     first_ms: Optional[float] = None, source: str = "etdump") -> Latency:
        """Compute every statistic from ``raw`` (at least one sample)."""
        mean, std = stats.mean_std(raw)
        return cls(
            raw=tuple(float(s) for s in raw),
            min=min(raw),
            p10=stats.percentile(raw, 10),
            p50=stats.percentile(raw, 50),
            p90=stats.percentile(raw, 90),
            mean=mean,
            std=std,
            trimmed_mean=stats.trimmed_mean(raw),
            cv=std / mean if mean else 0.0,
            load_ms=load_ms,
            first_ms=first_ms,
            source=source,
        )


@dataclass(frozen=True)
class Memory:
    """Planned memory from the .pte and the runner process's resident memory."""

    planned_bytes: int
    """The method's memory-planned arena (activations), from the .pte."""
    peak_rss_bytes: Optional[int] = None
    """The runner's peak resident memory (VmHWM) during the run."""
    baseline_rss_bytes: Optional[int] = None
    """The runner's resident memory just before it loaded the model."""
    buffer_sizes: tuple[int, ...] = ()
    constant_bytes: Optional[int] = None
    """Constant data in the .pte (weights, and delegate payloads that hold them)."""

    @property
    def model_rss_bytes(self) -> Optional[int]:
        """Peak RSS above the runner's idle baseline: the memory the model itself costs."""
        if self.peak_rss_bytes is None or self.baseline_rss_bytes is None:
            return None
        return max(0, self.peak_rss_bytes - self.baseline_rss_bytes)


@dataclass(frozen=True)
class OpRecord:
    """One runtime op event (one row per executed op, summed over nothing)."""

    index: int
    name: str
    op_type: str
    category: str
    layer: Optional[str]
    p50_ms: float
    mean_ms: float
    min_ms: float
    p90_ms: float
    share: float
    backend: str = "portable"
    source_op: Optional[str] = None
    module_type: Optional[str] = None


@dataclass(frozen=True)
class OpTypeSummary:
    """One row of the "summary by node type" table."""

    op_type: str
    category: str
    count: int
    ms: float
    share: float
    cumulative_share: float


@dataclass(frozen=True)
class LayerSummary:
    """Time spent in one source layer (nn.Module path)."""

    layer: str
    ms: float
    """The p50 times of its ops, summed."""
    share: float
    """Of the profile's op time."""
    module_type: Optional[str] = None
    tensor_ms: float = 0.0
    non_tensor_ms: float = 0.0
    framework_ms: float = 0.0
    ops: int = 0


@dataclass(frozen=True, kw_only=True)
class Summary:
    """Totals and shares per category, per op type and per layer (p50 times)."""

    total_ms: float
    tensor_ms: float
    non_tensor_ms: float
    framework_ms: float
    tensor_share: float
    non_tensor_share: float
    framework_share: float
    attributed_share: float
    by_op_type: tuple[OpTypeSummary, ...] = ()
    top_layers: tuple[LayerSummary, ...] = ()


@dataclass(frozen=True)
class Accuracy:
    """Accuracy of the profiled model on a named data set (optional)."""

    dataset: str
    metric: str
    """``top1``: held-out top-1 in percent."""
    value: float
    agreement: Optional[float] = None
    """Percent of the samples on which the model predicts what a reference model predicts."""


@dataclass(frozen=True)
class Energy:
    """The energy of one inference, from the battery's fuel gauge: the draw while the model ran over the draw
    just before it, times the voltage and the mean execution time (``devices.energy``). Without a number,
    ``why_not`` says why (no gauge, the phone was charging, too few gauge readings)."""

    mj_per_inference: Optional[float] = None
    low: Optional[float] = None
    high: Optional[float] = None
    confidence: float = 0.95
    idle_ma: Optional[float] = None
    """The battery's draw just before the run."""
    run_ma: Optional[float] = None
    """The battery's draw while the model ran."""
    voltage_v: Optional[float] = None
    readings: int = 0
    """New gauge readings during the run (a gauge that has not refreshed repeats its value)."""
    idle_readings: int = 0
    gauge: Optional[str] = None
    """Where the readings came from and how they were read (files, unit)."""
    why_not: Optional[str] = None

    def shown(self) -> str:
        """One line: ``1.23 mJ per inference (95% CI 1.10-1.36)`` or why there is none."""
        if self.mj_per_inference is None:
            return f"not measured: {self.why_not}"
        return (f"{self.mj_per_inference:.3g} mJ per inference ({self.confidence:.0%} CI {self.low:.3g}-"
                f"{self.high:.3g}; {self.run_ma:.0f} mA running over {self.idle_ma:.0f} mA idle, "
                f"{self.readings} gauge readings)")


@dataclass(frozen=True)
class Profile:
    """One profiling run of one model on one device."""

    model: ModelInfo
    device: DeviceInfo
    settings: Settings
    latency: Latency
    memory: Memory
    ops: tuple[OpRecord, ...]
    summary: Summary
    created: str = ""
    tool_version: str = ""
    accuracy: Optional[Accuracy] = None
    warnings: tuple[Note, ...] = ()
    """What a reader of the numbers must know (no ETRecord, an emulated CPU, the fallback runner)."""
    noise: tuple[Note, ...] = ()
    """Why the latency may not be the model's alone (wide spread, a busy device, clocks that moved,
    throttling); empty when nothing says so."""
    energy: Optional[Energy] = None
    """Energy per inference from the battery's gauge, or why there is none; None in profiles made before it."""
    cold: Optional[ColdStart] = None
    """The program's start in fresh processes (``--cold N``); None when it was not measured. Optional and
    added without a schema bump: older files have none, and older rebirths ignore it."""
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; ``latency`` is stored under the key ``latency_ms``."""
        data = dataclasses.asdict(self)
        data["latency_ms"] = data.pop("latency")
        return {"schema_version": data.pop("schema_version"), **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        """Build a Profile from its JSON form, migrating older schema versions."""
        data = migrate(dict(data))
        data["latency"] = data.pop("latency_ms")
        return from_dict(cls, data)

    def save(self, path: str | os.PathLike) -> None:
        """Write the JSON atomically: the file is either complete or untouched."""
        write_json_atomic(Path(path), self.to_dict())

    def to_dataframe(self):
        """One row per op event, in run order (pandas): index, name, op_type, category, layer, p50_ms, mean_ms,
        min_ms, p90_ms, share, backend, source_op, module_type."""
        import pandas

        columns = [field.name for field in dataclasses.fields(OpRecord)]
        return pandas.DataFrame([dataclasses.astuple(op) for op in self.ops], columns=columns)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Profile:
        """Read a Profile JSON file.

        Raises:
            InputError: the file is missing or is not a Profile.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            return cls.from_dict(data)
        except FileNotFoundError:
            raise InputError(f"{path}: no such profile file") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise InputError(f"{path}: not a rebirth profile ({error})") from None


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a Profile dict of any known schema version up to ``SCHEMA_VERSION``."""
    version = data.get("schema_version")
    if not isinstance(version, int):
        raise ValueError("no schema_version")
    if version > SCHEMA_VERSION:
        raise ValueError(f"schema_version {version} is newer than this rebirth ({SCHEMA_VERSION}); upgrade rebirth")
    if version == 1:
        for key in ("warnings", "noise"):
            data[key] = [dataclasses.asdict(from_text(text)) for text in data.get(key, ())]
        data["schema_version"] = 2
    return data
