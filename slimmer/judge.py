"""What every learned step is judged by: held-out top-1 where accuracy can judge, else the fidelity of the logits
to the original's, counted from the original's quality and held to one budget. ``Evidence.fits`` is the one place
that says whether a step is within the budget.

A top-1 decision is held to the one-sided upper bound, at ``confidence``, of the points lost against the original on
data like the held-out samples (paired with the original sample by sample): a step is kept when even that bound is
within the budget, so that what the samples cannot tell is refused rather than decided by the draw of the samples.
Fidelity, a distance of the logits with no sampling interval here, is held to its estimate.

Where the CPU computes bfloat16 natively (``finetune.LOW_PRECISION``), a top-1 judge scores a float model's held-out
samples in bfloat16 and scores again in float32 every sample whose prediction bfloat16 could have flipped
(``LOW_MARGIN``), so that each prediction, and so each decision, is float32's; see ``_LowScore``."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from statistics import NormalDist
from typing import Optional, TypeVar

import torch
from torch import nn

from rebirth.contract.slim import FIDELITY, TOP1, Evidence
from rebirth.slimmer.finetune import LOW_PRECISION
from rebirth.slimmer.train import Accuracy, exported, laid_out, pieces, predictions, score

_T = TypeVar("_T")

MISSED_FIRST_BYTES = 256 << 20
"""The most bytes of held-out images ``Judge.fitting`` keeps to score the original's misses first; with more,
it scores every sample in order (``examine``)."""

LOW_MARGIN = 0.04
"""A sample's bfloat16 prediction stands only where its top two logits are further apart than this share of its
largest logit's size; the other samples are scored again in float32. It leaves room for each logit to be off by
half of it, ``LOW_ERROR`` twice over."""
LOW_ERROR = 0.01
"""The largest bfloat16 error of a logit, as a share of its sample's largest logit, that ``LOW_MARGIN`` allows for:
on full GoogLeNet's 899 held-out samples at 224 px it was at most 0.0076 (0.066 on logits of about 10; no
prediction flipped). Every sample scored in both precisions is checked against it, and a larger error sends the
whole pass back to float32."""


@dataclass(frozen=True)
class Judge:
    """The held-out data, the original's logits on it, the measure, the quality the budget is counted from, and
    the budget."""

    loaders: object
    teacher_logits: torch.Tensor
    measure: str
    reference: float
    budget: float
    confidence: float = 0.95
    """How sure a top-1 decision must be that the step is within the budget."""

    def quality(self, model: nn.Module) -> float:
        """``model``'s held-out top-1, or the fidelity of its logits (``measure``)."""
        return self.examine(model).quality

    def examine(self, model: nn.Module) -> Evidence:
        """``model`` against the original on the held-out samples: its quality, what it lost, and how sure that is."""
        return self.examine_logits(self.logits(model))

    def logits(self, model: nn.Module) -> torch.Tensor:
        """``model``'s held-out logits, in order. The last model scored is remembered while its parameters and
        buffers stay as they were: the slimmed model is scored once more at the end, as its last step left it."""
        if self._last.matches(model):
            return self._last.logits
        logits = self._scoring(model, lambda forward: torch.cat([
            forward(piece) for batch, _ in self.loaders.held_out  # type: ignore[attr-defined]
            for piece in pieces(torch.as_tensor(batch))]))
        self._last.remember(model, logits)
        return logits

    @torch.no_grad()
    def _scoring(self, model: nn.Module, scored: Callable[[Callable[[torch.Tensor], torch.Tensor]], _T]) -> _T:
        """``scored(forward)``: one pass over held-out images with ``forward``, which gives ``model``'s logits
        of a piece of them; in bfloat16 where that is sure to leave every prediction float32's (``_LowScore``),
        the pass made again in float32 where it is not."""
        model.eval()
        if LOW_PRECISION and self.measure == TOP1 and not exported(model) and not self._precision.off:
            try:
                return scored(_LowScore(model, self._precision))
            except _NotLogits:  # float32 from now on
                self._precision.off = True
            except _Unsure:
                self._precision.redone += 1
            except Exception:  # an operator the model uses has no bfloat16 kernel: float32 from now on
                self._precision.off = True
        return scored(lambda images: model(laid_out(images, model)))

    @cached_property
    def _precision(self) -> _Precision:
        return _Precision()

    @cached_property
    def _last(self) -> _Scored:
        return _Scored()

    @torch.no_grad()
    def fitting(self, model: nn.Module, margin: float = 0.0) -> Optional[Evidence]:
        """``model``'s evidence (as ``examine``) when it is within the budget with ``margin`` more points lost (as
        ``Evidence.fits``), else None, as soon as the held-out samples scored so far show it cannot be, whatever
        the other samples hold: for a check whose refusal is not recorded (the block fit's, before an end-to-end
        fit; quantization-aware training's). The samples the original got wrong go first, since they are the only
        ones a step can gain; after them a step can only lose, so one that loses many stops after a few pieces,
        and the stop is exact: the whole pass would have refused it too. Fidelity, and held-out sets whose misses
        would not fit in ``MISSED_FIRST_BYTES``, are scored whole."""
        missed = self._missed if self.measure == TOP1 else None
        if missed is None or self.budget - margin >= 50:
            evidence = self.examine(model)
            return evidence if evidence.fits(margin) else None
        logits = self._scoring(model, lambda forward: self._misses_first(forward, missed, margin))
        if logits is None:
            return None
        self._last.remember(model, logits)
        evidence = self.examine_logits(logits)
        return evidence if evidence.fits(margin) else None

    def _misses_first(self, forward: Callable[[torch.Tensor], torch.Tensor], missed: tuple[torch.Tensor, torch.Tensor],
                      margin: float) -> Optional[torch.Tensor]:
        """``fitting``'s pass: a model's held-out logits (``forward``), the original's misses first; None as soon
        as the samples scored show it cannot be within the budget."""
        images, where = missed
        labels, samples = self.labels, len(self.labels)
        logits = torch.empty_like(self.teacher_logits)
        if len(where):
            logits[where] = torch.cat([forward(piece) for piece in pieces(images)])
        gained, lost, start = int((predictions(logits[where]) == labels[where]).sum()), 0, 0
        hit = predictions(self.teacher_logits) == labels
        for batch, _ in self.loaders.held_out:  # type: ignore[attr-defined]
            rows = start + hit[start:start + len(batch)].nonzero().flatten()
            done = 0
            for piece in pieces(torch.as_tensor(batch)[rows - start]) if len(rows) else ():
                placed = rows[done:done + len(piece)]
                done += len(piece)
                logits[placed] = forward(piece)
                lost += int((predictions(logits[placed]) != labels[placed]).sum())
                if 2 * (lost - gained) > samples or upper_bound(lost, gained, samples, self.confidence) + margin > \
                        self.budget:
                    return None  # the bound only grows as more are lost (the mean under half of the samples)
            start += len(batch)
        return logits

    @cached_property
    def _missed(self) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        """The held-out images the original got wrong, and where they are among the samples; None when they would
        take more than ``MISSED_FIRST_BYTES``."""
        where = (predictions(self.teacher_logits) != self.labels).nonzero().flatten()
        images: list[torch.Tensor] = []
        start = kept = 0
        for batch, _ in self.loaders.held_out:  # type: ignore[attr-defined]
            batch = torch.as_tensor(batch)
            inside = where[(where >= start) & (where < start + len(batch))] - start
            if len(inside):
                images.append(batch[inside])  # a copy: indexed by a tensor
                kept += images[-1].numel() * images[-1].element_size()
                if kept > MISSED_FIRST_BYTES:
                    return None
            start += len(batch)
        if not images:
            return torch.empty(0), where
        return torch.cat(images), where

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
        labels = self.labels
        quality = score(logits, labels).top1
        mine, theirs = predictions(logits), predictions(self.teacher_logits)
        lost, gained = ((theirs == labels) & (mine != labels)).sum().item(), \
            ((theirs != labels) & (mine == labels)).sum().item()
        low, high = paired_interval(int(lost), int(gained), samples)
        return Evidence(self.measure, quality, self.lost(quality), self.budget, samples,
                        int((mine != theirs).sum().item()), low, high, self.confidence,
                        upper_bound(int(lost), int(gained), samples, self.confidence))

    @cached_property
    def labels(self) -> torch.Tensor:
        """The held-out labels, in order (read once: a loader's batches copy their images too)."""
        return torch.cat([torch.as_tensor(labels) for _, labels in self.loaders.held_out])  # type: ignore[attr-defined]

    def lost(self, quality: float) -> float:
        """Points lost against the reference."""
        return self.reference - quality


class _Unsure(Exception):  # noqa: N818 (a signal, not an error)
    """A sample scored in both precisions was further off in bfloat16 than ``LOW_ERROR``."""


class _NotLogits(_Unsure):
    """The model's output is not one row of two or more class logits per sample: it is scored in float32."""


@dataclass
class _Precision:
    """How a judge's passes went in bfloat16: turned off (the model has an operator without a bfloat16 kernel),
    passes made again in float32 (``_Unsure``), and the samples scored again in float32 of those scored."""

    off: bool = False
    redone: int = 0
    rescored: int = 0
    scored: int = 0


class _LowScore:
    """A float model's logits of a piece of held-out images computed in bfloat16 (``torch.autocast``: the
    convolutions and linear layers on native bfloat16 kernels, 1.5-1.8x faster on full GoogLeNet at 224 px), each
    sample's prediction then as float32's would be: a sample whose top two logits are within ``LOW_MARGIN`` of its
    largest logit's size is scored again in float32 (about 3% of the digits on full GoogLeNet), and so is every
    sample of the first piece, so that each pass checks bfloat16's error against ``LOW_ERROR`` on samples whatever
    their margin. A larger error raises ``_Unsure``. The logits kept are float32's for the samples scored again and
    bfloat16's otherwise (the top-5 and the fidelity recorded beside a top-1 judgement are computed from them)."""

    def __init__(self, model: nn.Module, precision: _Precision):
        self.model, self.precision, self.first = model, precision, True

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        inputs = laid_out(images, self.model)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = self.model(inputs).float()
        if low.dim() != 2 or low.shape[1] < 2:
            raise _NotLogits
        top = low.topk(2, dim=1).values
        size = low.abs().amax(dim=1)
        unsure = torch.arange(len(low)) if self.first else \
            (top[:, 0] - top[:, 1] <= LOW_MARGIN * size).nonzero().flatten()
        self.first = False
        self.precision.scored += len(low)
        if len(unsure):
            exact = self.model(laid_out(images[unsure], self.model))
            if ((exact - low[unsure]).abs().amax(dim=1) > LOW_ERROR * size[unsure]).any():
                raise _Unsure
            low[unsure] = exact
            self.precision.rescored += len(unsure)
        return low


class _Scored:
    """A model's held-out logits, and its state when they were computed (the identity and in-place version of each
    parameter and buffer: training steps and loaded states change the versions)."""

    def __init__(self) -> None:
        self.model: Optional[weakref.ref] = None
        self.state: tuple = ()
        self.logits = torch.empty(0)

    def matches(self, model: nn.Module) -> bool:
        return self.model is not None and self.model() is model and self.state == _state(model)

    def remember(self, model: nn.Module, logits: torch.Tensor) -> None:
        self.model, self.state, self.logits = weakref.ref(model), _state(model), logits


def _state(model: nn.Module) -> tuple:
    return tuple((id(tensor), tensor._version) for tensor in (*model.parameters(), *model.buffers()))


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


def assess(teacher: nn.Module, loaders, trained: bool, budget: float, confidence: float = 0.95) -> Assessment:
    """The judge of a slimming of ``teacher`` with ``loaders`` (None: no judge), and what it found."""
    if loaders is None:
        return Assessment(None)
    from rebirth.slimmer.memo import held_out_logits

    teacher_logits, labels = held_out_logits(teacher, loaders.held_out)
    classes = int(loaders.classes)
    measure, reason = judged_by(trained, teacher_logits, classes)
    accuracy = score(teacher_logits, labels) if trained else None
    reference = accuracy.top1 if measure == TOP1 and accuracy is not None else 100.0
    return Assessment(Judge(loaders, teacher_logits, measure, reference, budget, confidence), accuracy, measure,
                      reason, classes, predicted_classes(teacher_logits),
                      resolution(len(teacher_logits), budget, confidence) if measure == TOP1 else None)


Z95 = 1.959964
"""The normal quantile of a two-sided 95% interval."""


def paired_interval(lost: int, gained: int, samples: int) -> tuple[float, float]:
    """The 95% interval, in points, of the top-1 lost on data like the held-out samples, from the samples the
    original got right and the step got wrong (``lost``) and the other way round (``gained``): the paired
    difference's normal interval, with one changed prediction added to its variance so that a step that changes
    nothing is not claimed exact on data the samples do not hold (about the rule of three at 95%)."""
    mean, spread = _paired(lost, gained, samples)
    return 100 * (mean - Z95 * spread), 100 * (mean + Z95 * spread)


def upper_bound(lost: int, gained: int, samples: int, confidence: float) -> float:
    """The one-sided upper bound, at ``confidence``, of the top-1 points lost on data like the held-out samples
    (``paired_interval``'s mean and spread)."""
    mean, spread = _paired(lost, gained, samples)
    return 100 * (mean + NormalDist().inv_cdf(confidence) * spread)


def _paired(lost: int, gained: int, samples: int) -> tuple[float, float]:
    """The paired difference's mean share lost and its standard error, one changed prediction added."""
    mean = (lost - gained) / samples
    return mean, math.sqrt(max((lost + gained + 1) / samples - mean * mean, 0.0) / samples)


def most_lost(samples: int, budget: float, confidence: float) -> int:
    """The most held-out samples a step may lose (gaining none back) and still be kept within ``budget``; -1 when
    even a step that changes no prediction is not."""
    most = -1
    while most + 1 <= samples and upper_bound(most + 1, 0, samples, confidence) <= budget:
        most += 1
    return most


def resolution(samples: int, budget: float, confidence: float = 0.95) -> str:
    """What ``samples`` held-out samples can tell at ``confidence``, said against the budget before any step: one
    sample's worth, and how many samples a step may lose and still be kept."""
    one, level = 100 / samples, f"{100 * confidence:g}%"
    most = most_lost(samples, budget, confidence)
    losing_one = math.ceil(100 * upper_bound(1, 0, samples, confidence)) / 100  # the least budget that keeps it
    if most < 0:
        return (f"the {samples} held-out samples cannot resolve the {budget:g}-point budget at {level} confidence (one "
                f"sample is {one:.2f} points; even a step that changes no prediction is bounded by "
                f"{upper_bound(0, 0, samples, confidence):.2f} points): learned steps will be refused, exact ones are "
                f"made. A step that loses one sample needs --max-accuracy-drop {losing_one:.2f}, or give more "
                "held-out data (--data), or a lower --confidence")
    if most == 0:
        return (f"{samples} held-out samples at {level} confidence: one is {one:.2f} points, and a learned step is "
                f"kept within the {budget:g}-point budget only if it loses no sample the original got right (net of "
                f"those it gains); losing one needs --max-accuracy-drop {losing_one:.2f} or more held-out data "
                "(--data)")
    return (f"{samples} held-out samples at {level} confidence: one is {one:.2f} points; a learned step is kept only "
            f"when the bound of what it loses is within the {budget:g}-point budget: at most {most} sample"
            f"{'s' if most > 1 else ''} lost, fewer where it changes other predictions too (each decision records "
            "its evidence)")


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
