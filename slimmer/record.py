"""slim.json: every merge applied, what it cost and saved, and the accuracy before and after."""

from __future__ import annotations

from dataclasses import asdict
from typing import Optional

SCHEMA_VERSION = 1


def _accuracy(accuracy) -> Optional[dict]:
    return None if accuracy is None else {"top1": accuracy.top1, "top5": accuracy.top5, "samples": accuracy.samples}


def slim_record(result, source: str, backend: str, profile: Optional[str], messages: list[str]) -> dict:
    """The JSON document of a slimming run (``slimmer.slim.SlimResult``)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "source": source,
        "backend": backend,
        "profile": profile,
        "merges": [{**asdict(merge), "layers": list(merge.layers), "learned": list(merge.learned)}
                   for merge in result.merges],
        "skipped": [{**asdict(skip), "layers": list(skip.layers)} for skip in result.skipped],
        "params": {"before": result.params_before, "after": result.params_after},
        "macs": {"before": result.macs_before, "after": result.macs_after},
        "accuracy": {
            "metric": "top1" if result.trained else "agreement",
            "dataset": result.dataset,
            "before": _accuracy(result.accuracy_before),
            "after": _accuracy(result.accuracy_after),
            "agreement": result.agreement,
        },
        "messages": messages,
    }
