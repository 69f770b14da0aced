"""One protocol for every slimming technique: a step is run on the model as the steps before it left it, is judged
by the one ``Judge``, and says what it did in a ``StepResult``: its records for slim.json, the model after it, that
model's quality, and the programs it wants written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

import torch
from torch import fx, nn

from rebirth.contract.paired import Budget, PairedComparison, Question
from rebirth.contract.slim import MergeRecord, QuantizationRecord, SkipRecord
from rebirth.models.lowering import Lowering
from rebirth.slimmer.finetune import StepCallback, TeacherLogits
from rebirth.slimmer.judge import Judge
from rebirth.slimmer.options import SlimOptions
from rebirth.slimmer.passes import SlimPass
from rebirth.slimmer.plan import Candidate

Say = Callable[[str], None]


def say_nothing(text: str) -> None:
    """A ``say`` that says nothing."""


@dataclass(frozen=True)
class Lessons:
    """What learned steps learn from: the original model, the training batches in a fixed order (with their
    labels, and the original's logits on them, for end-to-end fine-tuning) and the loader int8 calibrates on."""

    teacher: fx.GraphModule
    batches: list[torch.Tensor]
    logits: TeacherLogits
    labels: bool
    """The model learned the data's task, so its labels teach too."""
    calibration: list[torch.Tensor]
    """The image batches int8 calibrates on, drawn once from the training loader (held-out data judges), so that
    int8's probe and its step see the same ones."""


@dataclass(frozen=True)
class DeviceTimer:
    """Times two programs against each other on the device the model is slimmed for (``rebirth optimize``):
    ``compare(a, b, question, budget)`` runs the .pte files ``a`` and ``b`` (each with its .etrecord beside it)
    alternately until ``question`` is answered or ``budget`` spent."""

    device: str
    compare: Callable[[Path, Path, Question, Budget], PairedComparison]


@dataclass(frozen=True)
class StepContext:
    """What a step may use besides the model and the judge."""

    example_inputs: tuple
    times: dict[str, float]
    """The profile's measured p50 ms per layer of the original model."""
    original_macs: dict[str, int]
    """Multiply-accumulates per layer of the original model (what ``times`` were measured at)."""
    options: SlimOptions
    lessons: Optional[Lessons] = None
    """None without data: only exact steps."""
    quality: Optional[float] = None
    """The quality of the model as the step receives it (None without data)."""
    say: Say = say_nothing
    progress: Optional[StepCallback] = None
    timer: Optional[DeviceTimer] = None
    lowering: Optional[Lowering] = None
    """A worker process that lowers float programs while int8's is lowered here (``models.lowering``); None:
    every program is lowered in this process."""

    @property
    def least_gain_ms(self) -> float:
        """What a learned step must save to be worth its fine-tuning (``min_gain`` of the measured time)."""
        return self.options.min_gain * sum(self.times.values())


@dataclass(frozen=True)
class Program:
    """A program a step wants written: a model (which the writer exports) or a program exported already, under
    a role (``contract.slim``: the file is ``slim.pte`` or ``slim-ROLE.pte``)."""

    role: str
    model: nn.Module
    """What the program computes; programs of the same model are written once."""
    exported: Any = None
    """The exported program, when the step made it (an int8 one); else the writer exports ``model``."""
    lowered: Any = None
    """The program lowered for ExecuTorch, when the step lowered it already."""
    about: str = ""
    keep_pt2: bool = False
    """Write the exported program beside the .pte (for the slimmed program and the float one beside it)."""
    quality: Optional[float] = None
    """The quality of the program as ExecuTorch's runtime ran it on the held-out samples, when measured."""

    def export(self, example_inputs: tuple) -> Any:
        """The exported program: the step's, else ``model`` exported now."""
        if self.exported is not None:
            return self.exported
        import torch

        from rebirth.contract.quiet import quiet

        with quiet():
            return torch.export.export(self.model, example_inputs)


@dataclass(frozen=True)
class StepResult:
    """What one step did."""

    model: fx.GraphModule
    """The float model after the step (the model it received when it changed nothing)."""
    quality: Optional[float] = None
    """That model's quality, when the step measured it (None: as the step received it)."""
    merges: tuple[MergeRecord, ...] = ()
    skipped: tuple[SkipRecord, ...] = ()
    quantization: Optional[QuantizationRecord] = None
    programs: tuple[Program, ...] = field(default=())
    """What the step wants written: the model after it, under its role, for each technique's contribution to
    be measured on its own (written where a later step changed the model); or, under the role ``slim``, the
    program to run in place of the float model (int8), with that model beside it."""


class Step(Protocol):
    """A slimming technique. ``name`` is its registration; ``offers`` says what it could do to ``model`` and what
    the profile says each is worth, before anything is applied; ``run`` does it."""

    @property
    def name(self) -> str: ...

    def offers(self, model: fx.GraphModule, context: StepContext) -> list[tuple[Candidate, SlimPass]]: ...

    def run(self, model: fx.GraphModule, judge: Optional[Judge], context: StepContext) -> StepResult: ...

