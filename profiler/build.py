"""Assemble a Profile from what a run produced: the .pte, its ETRecord, the ETDump, the log."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rebirth.contract.device import DeviceInfo
from rebirth.contract.errors import InputError
from rebirth.contract.notes import ETRECORD_MISMATCH, ETRECORD_UNREADABLE, NO_ETRECORD, Note
from rebirth.contract.profile import Latency, Memory, ModelInfo, Profile, Settings
from rebirth.contract.summary import summarize
from rebirth.models.pte import DelegateBlob, PteFile
from rebirth.profiler.etrecord import SourceMap, load_source_map
from rebirth.profiler.noise import noise_flags
from rebirth.profiler.ops import EXECUTE_EVENT, drop_warmup, op_samples, source_map_mismatch, to_records
from rebirth.profiler.trace import Trace, read_trace

TOOL_VERSION = "0.1.0"


@dataclass(frozen=True)
class Measurement:
    """What the device measured besides the ETDump."""

    etdump_path: Path
    load_ms: Optional[float] = None
    peak_rss_bytes: Optional[int] = None
    baseline_rss_bytes: Optional[int] = None
    execution_ms: tuple[float, ...] = ()


def build_profile(pte: PteFile, etrecord_path: Optional[Path], source: str, measurement: Measurement,
                  device: DeviceInfo, settings: Settings) -> Profile:
    """Read the ETDump against the .pte (and ETRecord) and compute every statistic.

    An ETRecord that cannot be read or does not belong to the .pte is reported in
    ``Profile.warnings`` and the profile is made without layers.

    Raises:
        InputError: the .pte or the ETDump cannot be read, or the ETDump is empty.
    """
    trace = read_trace(measurement.etdump_path)
    blobs, kernels = pte.delegate_blobs(), pte.kernel_names()
    warnings: list[Note] = []
    source_map = _source_map(etrecord_path, pte.path, trace, blobs, kernels, warnings)
    ops = to_records(op_samples(trace, settings.warmup, blobs, kernels, source_map))
    sizes = pte.planned_buffer_sizes()
    latency = _latency(trace, settings.warmup, measurement)
    return Profile(
        model=ModelInfo(str(pte.path), pte.sha256, pte.size_bytes, pte.backend, source,
                        str(etrecord_path) if source_map else None),
        device=device,
        settings=settings,
        latency=latency,
        memory=Memory(sum(sizes), measurement.peak_rss_bytes, measurement.baseline_rss_bytes, sizes,
                      pte.constant_bytes),
        ops=tuple(ops),
        summary=summarize(ops),
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        tool_version=TOOL_VERSION,
        warnings=tuple(warnings),
        noise=noise_flags(latency, device),
    )


def _source_map(etrecord_path: Optional[Path], pte_path: Path, trace: Trace, blobs: list[DelegateBlob],
                kernels: dict[int, str], warnings: list[Note]) -> Optional[SourceMap]:
    if etrecord_path is None:
        warnings.append(Note(NO_ETRECORD, f"no ETRecord for {pte_path.name}: ops are profiled without their source "
                             f"layers (pass --etrecord or put {pte_path.with_suffix('.etrecord').name} beside it)"))
        return None
    try:
        source_map = load_source_map(etrecord_path)
    except InputError as error:
        warnings.append(Note(ETRECORD_UNREADABLE, f"{error}; profiling without layers"))
        return None
    reason = source_map_mismatch(source_map, trace, blobs, kernels)
    if reason:
        warnings.append(Note(ETRECORD_MISMATCH, f"ETRecord {etrecord_path.name} does not belong to {pte_path.name} "
                             f"({reason}); profiling without layers"))
        return None
    return source_map


def _latency(trace: Trace, warmup: int, measurement: Measurement) -> Latency:
    execute = trace.find(EXECUTE_EVENT)
    load_ms = measurement.load_ms
    if load_ms is None:
        load_ms = sum(e.raw_ms[0] for e in trace.load_events if e.name == "Program::load_method") or None
    if execute is not None:
        return Latency.from_samples(drop_warmup(execute.raw_ms, warmup), load_ms, execute.raw_ms[0],
                                    source="etdump:Method::execute")
    samples: Sequence[float] = measurement.execution_ms
    if not samples:
        raise InputError(f"{measurement.etdump_path}: no Method::execute events and no timings in the runner log")
    return Latency.from_samples(samples, load_ms, samples[0], source="runner-log")
