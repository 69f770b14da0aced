"""slim.json from a slimming run: every step applied or skipped, what it cost and saved, the accuracy before and
after, and the files written (the record type itself is ``contract.slim.SlimRecord``)."""

from __future__ import annotations

import dataclasses
from typing import Optional

from rebirth.contract.slim import TOP1, BeforeAfter, OutputFile, Score, SlimAccuracy, SlimRecord
from rebirth.slimmer.slim import SlimResult
from rebirth.slimmer.train import Accuracy


def _score(accuracy: Optional[Accuracy]) -> Optional[Score]:
    return None if accuracy is None else Score(accuracy.top1, accuracy.top5, accuracy.samples)


def slim_record(result: SlimResult, source: str, backend: str, profile: Optional[str], messages: list[str],
                files: tuple[OutputFile, ...] = ()) -> SlimRecord:
    """The record of a slimming run."""
    assessment = result.assessment
    accuracy = SlimAccuracy(result.measure, result.dataset, _score(result.accuracy_before),
                            _score(result.accuracy_after), result.agreement, result.fidelity_after,
                            assessment.reference_classes, assessment.classes, assessment.reason)
    return SlimRecord(source, backend, profile, result.merges, result.skipped,
                      BeforeAfter(result.params_before, result.params_after),
                      BeforeAfter(result.macs_before, result.macs_after), _as_it_runs(accuracy, result),
                      tuple(messages) + tuple(filter(None, (assessment.reason, assessment.resolution))),
                      result.quantization,
                      files, result.allocation)


def _as_it_runs(accuracy: SlimAccuracy, result: SlimResult) -> SlimAccuracy:
    """The headline's "after" is what the slimmed program scores as ExecuTorch's runtime runs it, where a step
    measured that (an int8 program)."""
    ran = result.programs[0].quality if result.programs else None
    if ran is None or accuracy.after is None or accuracy.metric != TOP1:
        return accuracy
    return dataclasses.replace(accuracy, after=dataclasses.replace(accuracy.after, top1=ran, top5=None))
