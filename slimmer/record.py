"""slim.json from a slimming run: every merge applied, what it cost and saved, and the accuracy before and
after (the record type itself is ``contract.slim.SlimRecord``)."""

from __future__ import annotations

from typing import Optional

from rebirth.contract.slim import BeforeAfter, Score, SlimAccuracy, SlimRecord
from rebirth.slimmer.slim import SlimResult
from rebirth.slimmer.train import Accuracy


def _score(accuracy: Optional[Accuracy]) -> Optional[Score]:
    return None if accuracy is None else Score(accuracy.top1, accuracy.top5, accuracy.samples)


def slim_record(result: SlimResult, source: str, backend: str, profile: Optional[str],
                messages: list[str]) -> SlimRecord:
    """The record of a slimming run."""
    accuracy = SlimAccuracy(result.measure, result.dataset, _score(result.accuracy_before),
                            _score(result.accuracy_after), result.agreement, result.fidelity_after,
                            result.reference_classes, result.classes, result.reason)
    return SlimRecord(source, backend, profile, tuple(result.merges), tuple(result.skipped),
                      BeforeAfter(result.params_before, result.params_after),
                      BeforeAfter(result.macs_before, result.macs_after), accuracy,
                      tuple(messages) + ((result.reason,) if result.reason else ()), result.quantization)
