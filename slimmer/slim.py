"""Slim a model: apply the planned merges best first, fine-tune what each regenerates, stop at the
accuracy budget, and say what was done."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import fx, nn

from rebirth.contract.slim import FIDELITY, TOP1, MergeRecord, QuantizationRecord, SkipRecord
from rebirth.slimmer.cost import layer_macs, parameters
from rebirth.slimmer.finetune import TeacherLogits, fit_block, fit_end_to_end
from rebirth.slimmer.graph import finish, trace
from rebirth.slimmer.passes import SlimPass
from rebirth.slimmer.plan import Candidate, candidates, make_passes
from rebirth.slimmer.quantize import Quantized, calibration_batches, quantize_int8
from rebirth.slimmer.train import Accuracy, evaluate

Say = Callable[[str], None]


@dataclass(frozen=True)
class SlimOptions:
    max_accuracy_drop: float = 0.5
    """Points of held-out top-1, or of output fidelity where accuracy cannot be trusted (``fidelity``)."""
    exact_only: bool = False
    block_steps: int = 40
    end_to_end_steps: int = 40
    seed: int = 0
    max_merges: int = 100
    min_gain: float = 0.02
    """A learned merge must save at least this fraction of the measured time to be worth its fine-tuning."""
    quantize: Optional[str] = None
    """``int8``: quantize after the merges (``slimmer.quantize``), if it stays within the budget."""
    decompose: bool = False
    """After the merges, decompose the layers that cost the most into low-rank chains (``DecomposeLowRank``)."""
    reduce_channels: bool = False
    """After the merges (before any decomposition), cut the channels between convolutions where the time is
    (``ReduceChannels``)."""


@dataclass(frozen=True)
class Judge:
    """What a learned step is judged by: the held-out data, the original's logits on it, the measure, the
    quality the budget is counted from, and the budget."""

    loaders: object
    teacher_logits: torch.Tensor
    measure: str
    reference: float
    budget: float

    def quality(self, model: nn.Module) -> float:
        return _quality(model, self.teacher_logits, self.loaders, self.measure)

    def score(self, logits: torch.Tensor) -> float:
        """The quality of held-out ``logits`` (one row per held-out sample, in order) however they were
        computed: by ExecuTorch's runtime, for example."""
        if self.measure == TOP1:
            labels = torch.cat([labels for _, labels in self.loaders.held_out])  # type: ignore[attr-defined]
            return 100.0 * (logits.argmax(1) == labels).float().mean().item()
        return fidelity(logits, self.teacher_logits)

    def within(self, quality: float) -> bool:
        return self.reference - quality <= self.budget


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
    measure: str = TOP1
    """What the merges were judged by: ``top1`` (held-out accuracy) or ``fidelity`` (``fidelity()``)."""
    fidelity_after: Optional[float] = None
    reference_classes: Optional[int] = None
    """How many classes the original predicts on the held-out samples."""
    classes: Optional[int] = None
    reason: Optional[str] = None
    """Why the merges were judged by fidelity rather than accuracy."""
    quantized: Optional[Quantized] = None
    """The int8 model, when it was asked for and kept; ``model`` is then the float model it was made from."""
    quantization: Optional[QuantizationRecord] = None
    merged: Optional[fx.GraphModule] = None
    """The model after the merges alone, when a compression step followed them."""
    reduced: Optional[fx.GraphModule] = None
    """The model after the merges and the channel reduction, when a decomposition followed them."""
    judge: Optional[Judge] = None
    """How steps were judged (None without data): what judges the int8 program as the runtime runs it."""


@torch.no_grad()
def outputs(model: nn.Module, loader) -> torch.Tensor:
    """``model``'s logits for every sample of ``loader``, in order."""
    model.eval()
    return torch.cat([model(images) for images, _ in loader])


def agreement(student: torch.Tensor, reference: torch.Tensor) -> float:
    """Percent of the samples on which the ``student`` logits pick the class the ``reference`` logits pick."""
    return 100.0 * (student.argmax(1) == reference.argmax(1)).float().mean().item()


def predicted_classes(logits: torch.Tensor) -> int:
    """How many distinct classes ``logits`` pick over their samples."""
    return int(logits.argmax(1).unique().numel())


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


def slim(model: nn.Module, example_inputs: tuple, times: dict[str, float], loaders=None, trained: bool = False,
         options: SlimOptions = SlimOptions(), say: Say = lambda text: None, progress=None) -> SlimResult:
    """The slimmed copy of ``model``; ``model`` itself is not changed.

    Args:
        times: measured p50 ms per layer (from the model's profile).
        loaders: ``slimmer.data.Loaders`` for fine-tuning and judging; None: exact merges only.
        trained: the model learned the loaders' task, so accuracy can be measured (``judged_by`` decides).
    """
    teacher = trace(model)
    current = trace(model)
    original_macs = layer_macs(current, example_inputs)
    result = SlimResult(current, params_before=parameters(current), macs_before=sum(original_macs.values()),
                        dataset=loaders.name if loaders else None, trained=trained)
    exact_only = options.exact_only or loaders is None
    reference = 100.0  # what a learned merge's quality is judged against: the accuracy before, or full fidelity
    teacher_logits = outputs(teacher, loaders.held_out) if loaders is not None else None
    if loaders is not None:
        assert teacher_logits is not None
        result.classes = int(loaders.classes)
        result.reference_classes = predicted_classes(teacher_logits)
        result.measure, result.reason = judged_by(trained, teacher_logits, result.classes)
        if result.reason:
            say(result.reason)
        if trained:
            result.accuracy_before = evaluate(teacher, loaders.held_out)
        if result.measure == TOP1:
            assert result.accuracy_before is not None
            reference = result.accuracy_before.top1
    labelled = [(images, labels) for images, labels in _plain(loaders.train)] if loaders is not None else []
    batches = [images for images, _ in labelled]
    logits = TeacherLogits(teacher, labelled)
    rejected: set[tuple[str, tuple[str, ...], str]] = set()
    known: Optional[float] = None  # the quality of ``current``, once a learned merge measured it
    least = options.min_gain * sum(times.values())
    macs_then, params_then = result.macs_before, result.params_before
    for _ in range(options.max_merges):
        passes = make_passes(example_inputs, exact_only)  # decomposition comes after, all layers in one step
        ranked = [(c, p) for c, p in candidates(current, passes, times, example_inputs, original_macs)
                  if c.worthwhile and _identity(c) not in rejected]
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
        before = known if known is not None else reference
        if not candidate.match.exact:
            assert teacher_logits is not None, "learned merges are only planned with loaders"
            source = current if slim_pass.learns_from_current else teacher
            fit_block(trial, source, candidate.match.anchors, candidate.match.regenerated, batches,
                      options.block_steps, options.seed, progress)
            quality = _quality(trial, teacher_logits, loaders, result.measure)
            if reference - quality > options.max_accuracy_drop:  # the block alone did not recover: all layers
                fit_end_to_end(trial, logits, options.end_to_end_steps, options.seed, trained,
                               progress)
                quality = _quality(trial, teacher_logits, loaders, result.measure)
            drop = reference - quality
            if drop > options.max_accuracy_drop:
                rejected.add(_identity(candidate))
                detail = f" ({candidate.match.detail})" if candidate.match.detail else ""
                result.skipped.append(SkipRecord(candidate.match.kind, candidate.match.layers,
                                              f"{drop:.2f} points over the {options.max_accuracy_drop} budget{detail}"))
                say(f"skipped {candidate.match.kind} {', '.join(candidate.match.layers)}{detail}: {drop:.2f} points "
                    "lost")
                continue
        macs_now, params_now = sum(layer_macs(trial, example_inputs).values()), parameters(trial)
        result.merges.append(_merge(candidate, slim_pass, quality, before if quality is not None else None,
                                    macs_then - macs_now, params_then - params_now))
        current, macs_then, params_then = trial, macs_now, params_now
        if quality is not None:
            known = quality  # exact merges keep it
        say(f"merged {candidate.match.kind} {', '.join(candidate.match.layers)} (saves ~{candidate.gain_ms:.2f} ms"
            + (f", quality {quality:.1f})" if quality is not None else ")"))
    if loaders is not None and any(not m.exact for m in result.merges):
        assert teacher_logits is not None and known is not None, "a learned merge measured the quality"
        tuned = copy.deepcopy(current)
        fit_end_to_end(tuned, logits, options.end_to_end_steps, options.seed, trained, progress)
        tuned_quality = _quality(tuned, teacher_logits, loaders, result.measure)
        if tuned_quality >= known:
            current, known = tuned, tuned_quality
    if loaders is not None:
        assert teacher_logits is not None
        result.judge = Judge(loaders, teacher_logits, result.measure, reference, options.max_accuracy_drop)
    if result.judge is not None and (options.reduce_channels or options.decompose):
        from rebirth.slimmer.passes import DecomposeLowRank, ReduceChannels

        merged = current
        quality_now = known if known is not None else reference
        for asked, kind in ((options.reduce_channels, ReduceChannels), (options.decompose, DecomposeLowRank)):
            if not asked:
                continue
            step_input = current
            current, quality_now = _compress(kind.for_model(example_inputs), current, quality_now, example_inputs,
                                             times, original_macs, least, result.judge, batches, logits, trained,
                                             options, result, say, progress)
            if kind is DecomposeLowRank and current is not step_input and step_input is not merged:
                result.reduced = step_input
        known = quality_now
        result.merged = merged if current is not merged else None
    result.model = current
    result.params_after = parameters(current)
    result.macs_after = sum(layer_macs(current, example_inputs).values())
    if options.quantize:
        quality_now = known if known is not None else reference  # exact merges kept the reference's quality
        _quantize(result, current, example_inputs, loaders, teacher_logits, reference, quality_now, options, say)
    if loaders is not None:
        assert teacher_logits is not None
        final = outputs(current, loaders.held_out)
        result.agreement = agreement(final, teacher_logits)
        result.fidelity_after = fidelity(final, teacher_logits)
        if trained:
            result.accuracy_after = evaluate(current, loaders.held_out)
    return result


COMPRESS_LAYER_SHARE = 0.5
"""A compression step (a channel reduction, a decomposition) is one fine-tuning for all its layers, so a layer
needs to save only this share of ``min_gain`` to join it (1% of the measured time by default), as long as the
layers together save ``min_gain``: below that a layer's predicted gain is within what the profile's fit can tell."""


def _compress(compression: SlimPass, current: fx.GraphModule, known: float, example_inputs: tuple,
              times: dict[str, float], original_macs: dict[str, int], least: float, judge: Judge,
              batches: list[torch.Tensor], logits: TeacherLogits, trained: bool, options: SlimOptions,
              result: SlimResult, say: Say, progress) -> tuple[fx.GraphModule, float]:
    """One compression pass over every layer where the profile says it pays, as one step (the paper decomposed
    its merged network whole, then fine-tuned): each layer at the offer that saves it the most time; if
    that cannot be learned back within the budget, each at its next offer (a gentler one); else none."""
    offers: dict[str, list[Candidate]] = {}
    per_layer = COMPRESS_LAYER_SHARE * least
    for candidate, _ in candidates(current, [compression], times, example_inputs, original_macs):
        if candidate.worthwhile and candidate.gain_ms >= per_layer:
            offers.setdefault(candidate.match.layers[-1], []).append(candidate)  # best first, as ranked; the
            # layer a match ends at names it (a decomposed layer; the convolution reading reduced channels)
    if not offers or sum(choices[0].gain_ms for choices in offers.values()) < least:
        say(f"no layers are worth {compression.gerund}: the profile predicts no change saving "
            f"{100 * options.min_gain:g}% of the measured time together")
        return current, known
    work_then = layer_macs(current, example_inputs)
    macs_then, params_then = sum(work_then.values()), parameters(current)
    for level in range(max(len(choices) for choices in offers.values())):
        chosen = [choices[min(level, len(choices) - 1)] for choices in offers.values()]
        trial = copy.deepcopy(current)
        for candidate in chosen:
            compression.rewrite(trial, candidate.match)
        trial = finish(trial)
        layers = tuple(dict.fromkeys(layer for candidate in chosen for layer in candidate.match.layers))
        learned = tuple(dict.fromkeys(layer for candidate in chosen for layer in candidate.match.regenerated))
        work_now = layer_macs(trial, example_inputs)
        macs_now, params_now = sum(work_now.values()), parameters(trial)
        counted = [layer for layer in layers if work_then.get(layer)]
        share = sum(work_now.get(layer, 0) for layer in counted) / sum(work_then[layer] for layer in counted)
        summary = f"{len(counted)} layer{'s' if len(counted) > 1 else ''} to {100 * share:.0f}% of their MACs"
        fit_block(trial, current, compression.group_anchors([c.match for c in chosen]), learned, batches,
                  options.block_steps * 2, options.seed, progress)
        quality = judge.quality(trial)
        if not judge.within(quality):
            fit_end_to_end(trial, logits, options.end_to_end_steps * 2, options.seed, trained, progress)
            quality = judge.quality(trial)
        if not judge.within(quality):
            lost = judge.reference - quality
            result.skipped.append(SkipRecord(compression.kind, layers, f"{lost:.2f} points over the "
                                             f"{judge.budget} budget ({summary}; {_detail(chosen)})"))
            say(f"not {compression.verb} ({summary}): {lost:.2f} points lost")
            continue
        gain = sum(candidate.gain_ms for candidate in chosen)
        result.merges.append(MergeRecord(compression.kind, layers, False, learned, (),
                                         sum(c.saves_ms for c in chosen), sum(c.costs_ms for c in chosen), quality,
                                         known, f"{summary}; {_detail(chosen)}", macs_then - macs_now,
                                         params_then - params_now))
        say(f"{compression.verb} {summary} (saves ~{gain:.2f} ms, quality {known:.1f} -> {quality:.1f})")
        return trial, quality
    return current, known


def _detail(chosen: list[Candidate]) -> str:
    """``conv2 Tucker-2 ranks 24x16 of 64x48 (43% of the MACs), ...``"""
    return ", ".join(f"{c.match.layers[0]} {c.match.detail}" for c in chosen)


def _quantize(result: SlimResult, model: nn.Module, example_inputs: tuple, loaders, teacher_logits, reference: float,
              quality_before: float, options: SlimOptions, say: Say) -> None:
    """The last step: quantize ``model`` and keep it if the quality stays within the budget."""
    scheme = options.quantize or ""
    if loaders is None:
        result.quantization = QuantizationRecord(scheme, False, reason="quantization needs data to calibrate on "
                                                 "(a model taking one square 3-channel image, or --data)")
        say(f"not quantized: {result.quantization.reason}")
        return
    try:
        quantized = quantize_int8(model, example_inputs, calibration_batches(loaders.train))
    except Exception as error:  # the quantizer or export refused this graph: the float model stands
        first = str(error).splitlines()[0] if str(error) else ""
        reason = f"the quantizer refused the model ({type(error).__name__}: {first})"
        result.quantization = QuantizationRecord(scheme, False, reason=reason)
        say(f"not quantized: {reason}")
        return
    quality = _quality(quantized.module, teacher_logits, loaders, result.measure)
    drop = reference - quality
    record = QuantizationRecord(scheme, drop <= options.max_accuracy_drop, quantized.layers,
                                quantized.calibration_samples, quality_before, quality)
    if not record.applied:
        record = dataclasses.replace(record, reason=f"{drop:.2f} points lost, over the {options.max_accuracy_drop} "
                                     "budget")
        say(f"not quantized: {record.reason}")
    else:
        result.quantized = quantized
        say(f"quantized {len(quantized.layers)} layers to {scheme} (quality {quality_before:.1f} -> {quality:.1f})")
    result.quantization = record


def _quality(model: nn.Module, reference: torch.Tensor, loaders, measure: str) -> float:
    if measure == TOP1:
        return evaluate(model, loaders.held_out).top1
    return fidelity(outputs(model, loaders.held_out), reference)


def _plain(loader):
    from torch.utils.data import DataLoader

    return DataLoader(loader.dataset, loader.batch_size, shuffle=False)


def _identity(candidate: Candidate) -> tuple[str, tuple[str, ...], str]:
    """What a rejected step is remembered by: the same layers at other ranks may still be tried."""
    return candidate.match.kind, candidate.match.layers, candidate.match.detail


def _merge(candidate: Candidate, slim_pass: SlimPass, quality: Optional[float], quality_before: Optional[float],
           macs_saved: int, params_saved: int) -> MergeRecord:
    match = candidate.match
    removed = match.removed if slim_pass.deletes_layers else ()
    return MergeRecord(match.kind, match.layers, match.exact, match.regenerated, removed, candidate.saves_ms,
                       candidate.costs_ms, quality, quality_before, match.detail, macs_saved, params_saved)
