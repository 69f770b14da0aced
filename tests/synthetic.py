"""Synthetic Profiles and slim.json documents for report tests and benchmarks (no device, no model).

A profile has ``layers`` source layers in execution order: every seventh is a LocalResponseNorm
made of non-tensor ops (the kind the slimmer removes), the others a convolution with a transpose
before it. ``slimmed_pair`` returns a before profile, the after profile with the LRNs gone and
everything else ``speedup`` times faster, and the slim.json that says so.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable
from typing import Any, Optional

from rebirth.contract import (
    FRAMEWORK,
    NON_TENSOR,
    TENSOR,
    CoreInfo,
    DeviceInfo,
    Latency,
    Memory,
    ModelInfo,
    OpRecord,
    Profile,
    Settings,
    SlimRecord,
)
from rebirth.contract.summary import summarize

OPS_PER_LAYER = 5


def layer_names(layers: int) -> list[str]:
    """The source layers of a synthetic model, in execution order."""
    return [f"stage{i // 10}.lrn{i % 10}" if i % 7 == 3 else f"stage{i // 10}.block{i % 10}.conv"
            for i in range(layers)]


def synthetic_profile(ops: int = 500, seed: int = 0, speedup: float = 1.0, drop: Iterable[str] = (),
                      samples: int = 60, device: str = "pixel-8", source: str = "zoo:synthetic") -> Profile:
    """A plausible Profile of about ``ops`` op events (fewer when layers are dropped)."""
    generator = random.Random(seed)
    dropped = set(drop)
    rows: list[OpRecord] = []
    for layer in layer_names(ops // OPS_PER_LAYER):
        if layer not in dropped:
            rows += _layer_ops(layer, len(rows), speedup, generator)
    rows.append(_op(len(rows), "Method::execute", "framework", FRAMEWORK, None, 0.05, None))
    total = sum(op.p50_ms for op in rows)
    rows = [dataclasses.replace(op, share=op.p50_ms / total) for op in rows]
    raw = [generator.gauss(total, total * 0.03) for _ in range(samples)]
    return Profile(
        model=ModelInfo(path=f"/models/{source.split(':')[-1]}-{seed}.pte", sha256=f"{seed:064x}",
                        size_bytes=5_000_000 - 100_000 * len(dropped), backend="xnnpack", source=source),
        device=DeviceInfo(name=device, kind="adb", serial="192.0.2.7:5555", product_model="Pixel 8", abi="arm64-v8a",
                          os="Android 15", cores=tuple(CoreInfo(i, 2_900_000, "schedutil", 1_700_000, 2_900_000)
                                                       for i in range(4)),
                          temperature_c_start=31.5, temperature_c_end=38.0, throttled=False,
                          runner="/data/local/tmp/rebirth/executor_runner"),
        settings=Settings(warmup=5, iterations=samples, threads=4, cpu_affinity="f0", cooldown_s=2.0),
        latency=Latency.from_samples(raw, load_ms=12.5, first_ms=total * 1.8),
        memory=Memory(planned_bytes=8_000_000 - 40_000 * len(dropped),
                      peak_rss_bytes=90_000_000 - 200_000 * len(dropped), baseline_rss_bytes=60_000_000),
        ops=tuple(rows),
        summary=summarize(rows),
        created="2026-11-25T12:00:00+00:00",
        tool_version="0.1.0",
    )


def device_run(name: str, seed: int, factor: float = 1.0) -> Profile:
    """A stored-run-like Profile of device ``name`` (its own product model, so its own fingerprint) running
    zoo:googlenet; its 40 latency samples drawn around the profile's p50 with 3% noise and ``seed``, times
    ``factor``."""
    profile = synthetic_profile(ops=60, samples=40, device=name, source="zoo:googlenet")
    profile = dataclasses.replace(profile, device=dataclasses.replace(profile.device, product_model=f"Phone {name}"))
    draw = random.Random(seed)
    raw = [factor * draw.gauss(profile.latency.p50, 0.03 * profile.latency.p50) for _ in range(40)]
    return dataclasses.replace(profile, latency=Latency.from_samples(raw))


def slimmed_pair(ops: int = 500, speedup: float = 1.25, samples: int = 60) -> tuple[Profile, Profile, SlimRecord]:
    """A before profile, its slimmed after profile (LRNs removed, the rest faster) and the slim.json."""
    names = layer_names(ops // OPS_PER_LAYER)
    lrns = [index for index, name in enumerate(names) if ".lrn" in name]
    removed = [names[index] for index in lrns]
    before = synthetic_profile(ops, seed=0, samples=samples)
    after = synthetic_profile(ops, seed=1, speedup=speedup, drop=removed, samples=samples, source="slim.pte")
    return before, after, slim_record(removed, relearned=[names[index + 1] for index in lrns if index + 1 < len(names)])


def slim_record(removed: list[str], relearned: list[str], merged: Optional[list[str]] = None,
                trained: bool = True) -> SlimRecord:
    """The record of ``slim_document``, read as rebirth reads slim.json (migrated from version 1)."""
    return SlimRecord.from_dict(slim_document(removed, relearned, merged, trained))


def slim_document(removed: list[str], relearned: list[str], merged: Optional[list[str]] = None,
                  trained: bool = True) -> dict[str, Any]:
    """A version 1 slim.json document, as rebirth wrote them before the slim record was typed: the i-th
    removal of ``removed`` relearned ``relearned[i]``."""
    merges = [{"kind": "remove_lrn", "layers": [name], "exact": False, "learned": relearned[index:index + 1],
               "saves_ms": 0.2, "costs_ms": 0.0, "quality_after": 97.0} for index, name in enumerate(removed)]
    if merged:
        merges.append({"kind": "merge_pool_into_conv", "layers": merged, "exact": True, "learned": [],
                       "saves_ms": 0.1, "costs_ms": 0.02, "quality_after": None})
    scores = ({"top1": 91.25, "top5": 99.0, "samples": 400}, {"top1": 90.5, "top5": 98.75, "samples": 400})
    return {"schema_version": 1, "source": "zoo:synthetic", "backend": "xnnpack", "profile": None,
            "merges": merges, "skipped": [{"kind": "merge_parallel", "layers": ["stage0.block0.conv"],
                                           "reason": "1.2 points over the 0.5 budget"}],
            "params": {"before": 1_000_000, "after": 990_000}, "macs": {"before": 5_000_000, "after": 4_900_000},
            "accuracy": {"metric": "top1" if trained else "agreement", "dataset": "digits",
                         "before": scores[0] if trained else None, "after": scores[1] if trained else None,
                         "agreement": 96.0},
            "messages": []}


def _layer_ops(layer: str, start: int, speedup: float, generator: random.Random) -> list[OpRecord]:
    if ".lrn" in layer:
        kinds = [("avg_pool", NON_TENSOR, 0.08), ("mul", NON_TENSOR, 0.02), ("pow", NON_TENSOR, 0.03),
                 ("add", NON_TENSOR, 0.01), ("div", NON_TENSOR, 0.02)]
        module = "LocalResponseNorm"
    else:
        kinds = [("transpose", NON_TENSOR, 0.01), ("conv", TENSOR, 0.3), ("max_pool", NON_TENSOR, 0.02),
                 ("relu", NON_TENSOR, 0.005), ("copy", NON_TENSOR, 0.004)]
        module = "Conv2d"
    return [_op(start + offset, f"{op_type} #{start + offset}", op_type, category, layer,
                ms * generator.uniform(0.5, 1.5) / speedup, module)
            for offset, (op_type, category, ms) in enumerate(kinds)]


def _op(index: int, name: str, op_type: str, category: str, layer: Optional[str], ms: float,
        module: Optional[str]) -> OpRecord:
    return OpRecord(index=index, name=name, op_type=op_type, category=category, layer=layer, p50_ms=ms,
                    mean_ms=ms * 1.02, min_ms=ms * 0.95, p90_ms=ms * 1.1, share=0.0, backend="XnnpackBackend",
                    module_type=module)
