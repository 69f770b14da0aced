"""Slim a model: run every technique the options leave in (``slimmer.steps``), in order, each on the model the one
before it left, all judged by one ``Judge`` with the budget shared across them by ``slimmer.allocate``; record what
each did and choose the programs to write. The driver knows no step by class."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Optional

from torch import fx, nn

from rebirth.contract.slim import SLIM, Allocation, MergeRecord, PlannedMerge, QuantizationRecord, SkipRecord
from rebirth.models.lowering import Lowering
from rebirth.slimmer.allocate import run_allocated
from rebirth.slimmer.cost import layer_macs, parameters
from rebirth.slimmer.finetune import StepCallback
from rebirth.slimmer.graph import trace
from rebirth.slimmer.judge import Assessment, agreement, assess, fidelity
from rebirth.slimmer.options import SlimOptions
from rebirth.slimmer.plan import rank, steady_times
from rebirth.slimmer.steps import DeviceTimer, Lessons, Program, StepContext, StepResult, considered, steps_for
from rebirth.slimmer.steps.base import Say, say_nothing
from rebirth.slimmer.train import Accuracy, laid_out, score


@dataclass(frozen=True)
class SlimResult:
    """What a slimming did and made."""

    model: fx.GraphModule
    """The slimmed float model."""
    programs: tuple[Program, ...]
    """What to write, the slimmed program first; each model once."""
    assessment: Assessment
    merges: tuple[MergeRecord, ...] = ()
    skipped: tuple[SkipRecord, ...] = ()
    quantization: Optional[QuantizationRecord] = None
    params_before: int = 0
    params_after: int = 0
    macs_before: int = 0
    macs_after: int = 0
    accuracy_after: Optional[Accuracy] = None
    agreement: Optional[float] = None
    fidelity_after: Optional[float] = None
    dataset: Optional[str] = None
    trained: bool = False
    steps: tuple[str, ...] = field(default=())
    """The steps run, in order (a revisited int8 once, as it was kept)."""
    allocation: Optional[Allocation] = None
    """How the budget was shared across the techniques."""
    lowering: Optional[Lowering] = None
    """The worker that lowered float programs beside int8 (``write_programs`` takes what it wrote); whoever
    writes the programs closes it."""

    @property
    def accuracy_before(self) -> Optional[Accuracy]:
        return self.assessment.accuracy_before

    @property
    def measure(self) -> str:
        """What the steps were judged by: ``top1`` (held-out accuracy) or ``fidelity`` (``judge.fidelity``)."""
        return self.assessment.measure

    def program(self, role: str) -> Optional[Program]:
        """The program to write under ``role``, if any."""
        return next((program for program in self.programs if program.role == role), None)


def slim(model: nn.Module, example_inputs: tuple, times: dict[str, float], loaders=None, trained: bool = False,
         options: Optional[SlimOptions] = None, say: Say = say_nothing, progress: Optional[StepCallback] = None,
         timer: Optional[DeviceTimer] = None) -> SlimResult:
    """The slimmed copy of ``model``; ``model`` itself is not changed.

    Args:
        times: measured p50 ms per layer (from the model's profile); the steps weigh them as ``steady_times``.
        loaders: ``slimmer.data.Loaders`` for fine-tuning and judging; None: exact merges only.
        trained: the model learned the loaders' task, so accuracy can be measured (``judge.judged_by`` decides).
        options: how to slim (``SlimOptions()`` when None).
        timer: times two programs on the device the model is slimmed for (int8 is kept only where not slower).
    """
    options = options or SlimOptions()
    teacher, current = trace(model), trace(model)
    times = steady_times(teacher, example_inputs, times)
    original_macs = layer_macs(current, example_inputs)
    assessment = assess(teacher, loaders, trained, options.max_accuracy_drop, options.confidence)
    for said in (assessment.reason, assessment.resolution):
        if said:
            say(said)
    judge = assessment.judge
    context = StepContext(example_inputs, times, original_macs, options, _lessons(teacher, loaders, trained),
                          judge.reference if judge is not None else None, say, progress, timer)
    techniques = considered(options)
    for item in techniques:
        if item.reason and item.reason != "--skip":
            say(f"{item.name} not made: {item.reason}")
    allocated = run_allocated(techniques, current, judge, context)
    if context.lessons is not None:
        context.lessons.logits.kept()
    done = [(made.name, made.outcome) for made in allocated.made]
    final = done[-1][1].model if done else current
    result = _result(final, done, assessment, example_inputs, sum(original_macs.values()), parameters(teacher),
                     loaders, trained)
    return dataclasses.replace(result, allocation=allocated.allocation, lowering=allocated.lowering)


def _lessons(teacher: fx.GraphModule, loaders, trained: bool) -> Optional[Lessons]:
    if loaders is None:
        return None
    from torch.utils.data import DataLoader

    plain = DataLoader(loaders.train.dataset, loaders.train.batch_size, shuffle=False)
    labelled = [(laid_out(images), labels) for images, labels in plain]
    from rebirth.slimmer.memo import teacher_logits
    from rebirth.slimmer.quantize import calibration_batches

    return Lessons(teacher, [images for images, _ in labelled], teacher_logits(teacher, labelled, plain), trained,
                   calibration_batches(loaders.train))


def _result(final: fx.GraphModule, done: list[tuple[str, StepResult]], assessment: Assessment, example_inputs: tuple,
            macs_before: int, params_before: int, loaders, trained: bool) -> SlimResult:
    outcomes = [outcome for _, outcome in done]
    quantization = next((o.quantization for o in reversed(outcomes) if o.quantization is not None), None)
    result = SlimResult(final, chosen_programs(final, (p for o in outcomes for p in o.programs)), assessment,
                        tuple(m for o in outcomes for m in o.merges), tuple(s for o in outcomes for s in o.skipped),
                        quantization, params_before, parameters(final), macs_before,
                        sum(layer_macs(final, example_inputs).values()),
                        dataset=loaders.name if loaders is not None else None, trained=trained,
                        steps=tuple(name for name, _ in done))
    judge = assessment.judge
    if judge is None:
        return result
    logits = judge.logits(final)
    return dataclasses.replace(result, agreement=agreement(logits, judge.teacher_logits),
                               fidelity_after=fidelity(logits, judge.teacher_logits),
                               accuracy_after=score(logits, judge.labels) if trained else None)


def chosen_programs(final: fx.GraphModule, offered: Iterable[Program]) -> tuple[Program, ...]:
    """The programs to write: the slimmed one first (the last offered as ``slim``, else ``final`` itself), then
    the others in step order, each model once. Where two steps name one model, the later step's name stands (the
    merges' model is the float program beside an int8 one when nothing changed it in between), so a step's
    model is written under its own name only where a later step changed the model further."""
    offered = list(offered)
    slim_program = next((p for p in reversed(offered) if p.role == SLIM), None) or \
        Program(SLIM, final, keep_pt2=True)
    written, others = {id(slim_program.model)}, []
    for program in reversed(offered):
        if program.role != SLIM and id(program.model) not in written:
            written.add(id(program.model))
            others.append(program)
    return (slim_program, *reversed(others))


def plan_offers(model: nn.Module, example_inputs: tuple, times: dict[str, float],
                options: SlimOptions) -> list[PlannedMerge]:
    """What every step the options ask for offers on ``model`` before any is applied, with what the profile says
    each is worth: merges first, then compressions, best first (`rebirth slim --plan`). With ``exact_only``, the
    exact offers alone."""
    gm = trace(model)
    context = StepContext(example_inputs, steady_times(gm, example_inputs, times), layer_macs(gm, example_inputs),
                          options)
    found = [pair for step in steps_for(options) for pair in step.offers(gm, context)
             if pair[0].match.exact or not options.exact_only]
    return [candidate.record() for candidate, _ in sorted(found, key=rank)]
