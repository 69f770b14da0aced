"""What every learned step is judged by: held-out top-1 where accuracy can judge, else the fidelity of the logits
to the original's, counted from the original's quality and held to one budget. ``Judge.within`` is the one place
that says whether a quality is within the budget."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from rebirth.contract.slim import FIDELITY, TOP1, Evidence
from rebirth.slimmer.train import Accuracy, evaluate, predictions, score


@dataclass(frozen=True)
class Judge:
    """The held-out data, the original's logits on it, the measure, the quality the budget is counted from, and
    the budget."""

    loaders: object
    teacher_logits: torch.Tensor
    measure: str
    reference: float
    budget: float

    def quality(self, model: nn.Module) -> float:
        """``model``'s held-out top-1, or the fidelity of its logits (``measure``)."""
        return self.examine(model).quality

    def examine(self, model: nn.Module) -> Evidence:
        """``model`` against the original on the held-out samples: its quality, what it lost, and how sure that is."""
        return self.examine_logits(outputs(model, self.loaders.held_out))  # type: ignore[attr-defined]

    def score(self, logits: torch.Tensor) -> float:
        """The quality of held-out ``logits`` (one row per held-out sample, in order) however they were
        computed: by ExecuTorch's runtime, for example."""
        return self.examine_logits(logits).quality

    def examine_logits(self, logits: torch.Tensor) -> Evidence:
        """The evidence of held-out ``logits`` (one row per sample, in order), however they were computed."""
        samples = len(logits)
        if self.measure != TOP1:
            quality = fidelity(logits, self.teacher_logits)
            return Evidence(self.measure, quality, self.lost(quality), self.budget, samples)
        labels = torch.cat([labels for _, labels in self.loaders.held_out])  # type: ignore[attr-defined]
        quality = score(logits, labels).top1
        mine, theirs = predictions(logits), predictions(self.teacher_logits)
        lost, gained = ((theirs == labels) & (mine != labels)).sum().item(), \
            ((theirs != labels) & (mine == labels)).sum().item()
        low, high = paired_interval(int(lost), int(gained), samples)
        return Evidence(self.measure, quality, self.lost(quality), self.budget, samples,
                        int((mine != theirs).sum().item()), low, high)

    def lost(self, quality: float) -> float:
        """Points lost against the reference."""
        return self.reference - quality

    def within(self, quality: float) -> bool:
        """Whether a model of this quality is within the budget."""
        return self.lost(quality) <= self.budget


@dataclass(frozen=True)
class Assessment:
    """How a slimming is judged, decided once from the original model and the data."""

    judge: Optional[Judge]
    """None without data: only exact steps can be made."""
    accuracy_before: Optional[Accuracy] = None
    measure: str = TOP1
    reason: Optional[str] = None
    """Why the steps are judged by fidelity rather than accuracy."""
    classes: Optional[int] = None
    reference_classes: Optional[int] = None
    """How many classes the original predicts on the held-out samples."""
    resolution: Optional[str] = None
    """What the held-out samples can tell against the budget (``resolution``), said before any step (top-1)."""


def assess(teacher: nn.Module, loaders, trained: bool, budget: float) -> Assessment:
    """The judge of a slimming of ``teacher`` with ``loaders`` (None: no judge), and what it found."""
    if loaders is None:
        return Assessment(None)
    teacher_logits = outputs(teacher, loaders.held_out)
    classes = int(loaders.classes)
    measure, reason = judged_by(trained, teacher_logits, classes)
    accuracy = evaluate(teacher, loaders.held_out) if trained else None
    reference = accuracy.top1 if measure == TOP1 and accuracy is not None else 100.0
    return Assessment(Judge(loaders, teacher_logits, measure, reference, budget), accuracy, measure, reason, classes,
                      predicted_classes(teacher_logits),
                      resolution(len(teacher_logits), budget) if measure == TOP1 else None)


Z95 = 1.959964
"""The normal quantile of a two-sided 95% interval."""


def paired_interval(lost: int, gained: int, samples: int) -> tuple[float, float]:
    """The 95% interval, in points, of the top-1 lost on data like the held-out samples, from the samples the
    original got right and the step got wrong (``lost``) and the other way round (``gained``): the paired
    difference's normal interval, with one changed prediction added to its variance so that a step that changes
    nothing is not claimed exact on data the samples do not hold (about the rule of three at 95%)."""
    mean = (lost - gained) / samples
    variance = max((lost + gained + 1) / samples - mean * mean, 0.0) / samples
    half = Z95 * math.sqrt(variance)
    return 100 * (mean - half), 100 * (mean + half)


def resolution(samples: int, budget: float) -> str:
    """What ``samples`` held-out samples can tell at 95%, said against the budget: one sample's worth, and how
    many changed predictions a step may make before its interval holds more than the budget."""
    one = 100 / samples
    most = max(0, int((budget * samples / (100 * Z95)) ** 2) - 1)
    if Z95 * 100 / samples > budget:
        return (f"the {samples} held-out samples cannot resolve the {budget:g}-point budget (one sample is {one:.2f} "
                f"points; even a step that changes no prediction is known only to ±{Z95 * 100 / samples:.2f} points "
                "at 95%): steps are decided on these samples' own accuracy, and other data may decide otherwise")
    return (f"{samples} held-out samples: one is {one:.2f} points; a step is decided on these samples' own accuracy, "
            f"and its 95% interval stays within the {budget:g}-point budget only when it changes at most {most} "
            "prediction" + ("s" if most != 1 else "") + " (each decision records its evidence)")


@torch.no_grad()
def outputs(model: nn.Module, loader) -> torch.Tensor:
    """``model``'s logits for every sample of ``loader``, in order."""
    model.eval()
    return torch.cat([model(images) for images, _ in loader])


def agreement(student: torch.Tensor, reference: torch.Tensor) -> float:
    """Percent of the samples on which the ``student`` logits pick the class the ``reference`` logits pick."""
    return 100.0 * (predictions(student) == predictions(reference)).float().mean().item()


def predicted_classes(logits: torch.Tensor) -> int:
    """How many distinct classes ``logits`` pick over their samples."""
    return int(predictions(logits).unique().numel())


def fidelity(student: torch.Tensor, reference: torch.Tensor) -> float:
    """How closely ``student`` logits follow the ``reference`` ones, in percent: 100 minus the relative error
    of the logits measured around the reference's mean output. A model that outputs the same for every
    input, however close to the reference's average, scores 0; an exact copy scores 100."""
    signal = (reference - reference.mean(0, keepdim=True)).norm()
    if signal == 0:
        return 100.0 if torch.equal(student, reference) else 0.0
    error = (student - reference).norm() / signal
    return max(0.0, 100.0 * (1.0 - error.item()))


def judged_by(trained: bool, reference: torch.Tensor, classes: int) -> tuple[str, Optional[str]]:
    """``("top1", None)`` when held-out accuracy can judge the merges, else ``("fidelity", why)``: an untrained
    model, or one that predicts fewer than half of the classes (any model predicting its one class would
    keep "accuracy" or "agreement" with it)."""
    predicted = predicted_classes(reference)
    if not trained:
        return FIDELITY, (f"the model has no trained weights (it predicts {predicted} of {classes} classes): "
                          "merges are judged by output fidelity, the relative error of the logits")
    if 2 * predicted < classes:
        return FIDELITY, (f"the model predicts only {predicted} of {classes} classes on the held-out samples, so "
                          "accuracy would gate nothing: merges are judged by output fidelity, the relative "
                          "error of the logits")
    return TOP1, None
