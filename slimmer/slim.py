"""Slim a model: apply the planned merges best first, fine-tune what each regenerates, stop at the
accuracy budget, and say what was done."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import fx, nn

from contract.slim import MergeRecord, SkipRecord
from slimmer.cost import layer_macs, parameters
from slimmer.finetune import TeacherLogits, fit_block, fit_end_to_end
from slimmer.graph import trace
from slimmer.passes import SlimPass
from slimmer.plan import Candidate, candidates, make_passes
from slimmer.train import Accuracy, evaluate

Say = Callable[[str], None]


@dataclass(frozen=True)
class SlimOptions:
    max_accuracy_drop: float = 0.5
    """Points of held-out top-1 (or of agreement with the original, for an untrained model)."""
    exact_only: bool = False
    block_steps: int = 40
    end_to_end_steps: int = 40
    seed: int = 0
    max_merges: int = 100
    min_gain: float = 0.02
    """A learned merge must save at least this fraction of the measured time to be worth its fine-tuning."""


@dataclass
class SlimResult:
    model: fx.GraphModule
    merges: list[MergeRecord] = field(default_factory=list)
    skipped: list[SkipRecord] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    macs_before: int = 0
    macs_after: int = 0
    accuracy_before: Optional[Accuracy] = None
    accuracy_after: Optional[Accuracy] = None
    agreement: Optional[float] = None
    dataset: Optional[str] = None
    trained: bool = False


@torch.no_grad()
def predictions(model: nn.Module, loader) -> torch.Tensor:
    """The class ``model`` predicts for every sample of ``loader``, in order."""
    return torch.cat([model(images).argmax(1) for images, _ in loader])


def agreement(student: nn.Module, reference: torch.Tensor, loader) -> float:
    """Percent of the samples on which ``student`` predicts the class of ``reference`` (``predictions``)."""
    return 100.0 * (predictions(student, loader) == reference).float().mean().item()


def slim(model: nn.Module, example_inputs: tuple, times: dict[str, float], loaders=None, trained: bool = False,
         options: SlimOptions = SlimOptions(), say: Say = lambda text: None, progress=None) -> SlimResult:
    """The slimmed copy of ``model``; ``model`` itself is not changed.

    Args:
        times: measured p50 ms per layer (from the model's profile).
        loaders: ``slimmer.data.Loaders`` for fine-tuning and judging; None: exact merges only.
        trained: the model learned the loaders' task, so accuracy is measured (else agreement).
    """
    teacher = trace(model)
    current = trace(model)
    original_macs = layer_macs(current, example_inputs)
    result = SlimResult(current, params_before=parameters(current), macs_before=sum(original_macs.values()),
                        dataset=loaders.name if loaders else None, trained=trained)
    exact_only = options.exact_only or loaders is None
    reference = 100.0  # what a learned merge's quality is judged against: the accuracy before, or full agreement
    if loaders is not None and trained:
        result.accuracy_before = evaluate(teacher, loaders.held_out)
        reference = result.accuracy_before.top1
    teacher_classes = predictions(teacher, loaders.held_out) if loaders is not None else None
    labelled = [(images, labels) for images, labels in _plain(loaders.train)] if loaders is not None else []
    batches = [images for images, _ in labelled]
    logits = TeacherLogits(teacher, labelled)
    rejected: set[tuple[str, tuple[str, ...]]] = set()
    known: Optional[float] = None  # the quality of ``current``, once a learned merge measured it
    least = options.min_gain * sum(times.values())
    for _ in range(options.max_merges):
        ranked = [(c, p) for c, p in candidates(current, make_passes(example_inputs, exact_only), times,
                                                 example_inputs, original_macs)
                  if c.worthwhile and (c.match.kind, c.match.layers) not in rejected]
        small = [c for c, _ in ranked if not c.match.exact and c.gain_ms < least]
        ranked = [(c, p) for c, p in ranked if c.match.exact or c.gain_ms >= least]
        if not ranked:
            result.skipped.extend(SkipRecord(c.match.kind, c.match.layers, f"saves ~{c.gain_ms:.3f} ms, under the "
                                          f"{100 * options.min_gain:g}% of the measured time worth fine-tuning for")
                                  for c in small)
            break
        candidate, slim_pass = ranked[0]
        trial = slim_pass.apply(copy.deepcopy(current), candidate.match)
        quality = None
        if not candidate.match.exact:
            assert teacher_classes is not None, "learned merges are only planned with loaders"
            fit_block(trial, teacher, candidate.match.anchors, candidate.match.regenerated, batches,
                      options.block_steps, options.seed, progress)
            quality = _quality(trial, teacher_classes, loaders, trained)
            if reference - quality > options.max_accuracy_drop:  # the block alone did not recover: all layers
                fit_end_to_end(trial, logits, options.end_to_end_steps, options.seed, trained,
                               progress)
                quality = _quality(trial, teacher_classes, loaders, trained)
            drop = reference - quality
            if drop > options.max_accuracy_drop:
                rejected.add((candidate.match.kind, candidate.match.layers))
                result.skipped.append(SkipRecord(candidate.match.kind, candidate.match.layers,
                                              f"{drop:.2f} points over the {options.max_accuracy_drop} budget"))
                say(f"skipped {candidate.match.kind} {', '.join(candidate.match.layers)}: {drop:.2f} points lost")
                continue
        current = trial
        if quality is not None:
            known = quality  # exact merges keep it
        result.merges.append(_merge(candidate, slim_pass, quality))
        say(f"merged {candidate.match.kind} {', '.join(candidate.match.layers)} "
            f"(saves ~{candidate.gain_ms:.2f} ms" + (f", quality {quality:.1f})" if quality is not None else ")"))
    if loaders is not None and any(not m.exact for m in result.merges):
        assert teacher_classes is not None and known is not None, "a learned merge measured the quality"
        tuned = copy.deepcopy(current)
        fit_end_to_end(tuned, logits, options.end_to_end_steps, options.seed, trained, progress)
        tuned_quality = _quality(tuned, teacher_classes, loaders, trained)
        if tuned_quality >= known:
            current, known = tuned, tuned_quality
    result.model = current
    result.params_after = parameters(current)
    result.macs_after = sum(layer_macs(current, example_inputs).values())
    if loaders is not None:
        assert teacher_classes is not None
        result.agreement = known if known is not None and not trained else \
            agreement(current, teacher_classes, loaders.held_out)
        if trained:
            result.accuracy_after = evaluate(current, loaders.held_out)
    return result


def _quality(model: nn.Module, reference: torch.Tensor, loaders, trained: bool) -> float:
    return evaluate(model, loaders.held_out).top1 if trained else agreement(model, reference, loaders.held_out)


def _plain(loader):
    from torch.utils.data import DataLoader

    return DataLoader(loader.dataset, loader.batch_size, shuffle=False)


def _merge(candidate: Candidate, slim_pass: SlimPass, quality: Optional[float]) -> MergeRecord:
    match = candidate.match
    removed = match.removed if slim_pass.deletes_layers else ()
    return MergeRecord(match.kind, match.layers, match.exact, match.regenerated, removed, candidate.saves_ms,
                       candidate.costs_ms, quality)
