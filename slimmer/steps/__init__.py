"""The slimming techniques, each a step behind one protocol (``Step``), and the ordered registry the driver runs.

A new technique is one module here (a class with ``name``, ``offers`` and ``run``) and one line in ``STEPS``: a
factory that makes the step for the options, or says why it cannot run with them. Every technique runs unless
``SlimOptions.skip`` names it. The driver (``slimmer.slim``) knows no step by class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional, Union

from rebirth.contract.errors import InputError
from rebirth.contract.slim import ABOUT, REDUCED, RUN, SKIPPED, UNAVAILABLE
from rebirth.slimmer.options import SlimOptions
from rebirth.slimmer.passes import DecomposeLowRank, ReduceChannels
from rebirth.slimmer.steps.base import DeviceTimer, Lessons, Program, Step, StepContext, StepResult
from rebirth.slimmer.steps.compress import COMPRESS_LAYER_WORK, CompressionStep
from rebirth.slimmer.steps.int8 import QuantizeStep
from rebirth.slimmer.steps.merges import MergeStep

StepFactory = Callable[[SlimOptions], Union[Step, str, None]]
"""The step for the options; or why it cannot run with them (a string, said and recorded); or None (nothing)."""


def _merges(options: SlimOptions) -> Step:
    return MergeStep()


def _channels(options: SlimOptions) -> Step:
    return CompressionStep(ReduceChannels, REDUCED, ABOUT[REDUCED])


def _low_rank(options: SlimOptions) -> Step:
    return CompressionStep(DecomposeLowRank)


def _int8(options: SlimOptions) -> Step | str:
    if options.backend != "xnnpack":
        return (f"int8 is made for XNNPACK (its quantizer and int8 kernels); the {options.backend} backend gets the "
                "float program")
    return QuantizeStep()


STEPS: list[tuple[str, StepFactory]] = [("merges", _merges), ("reduce_channels", _channels),
                                        ("low_rank", _low_rank), ("int8", _int8)]
"""Every technique, in the order it runs: the merges, then the compressions on the network they made (the paper
decomposed its merged network), int8 last, on the program as it will run."""


def register(name: str, factory: StepFactory, before: Optional[str] = None) -> None:
    """Add a technique to ``STEPS``: before the one named ``before``, else last.

    Raises:
        ValueError: ``name`` is registered already, or ``before`` is not.
    """
    names = [known for known, _ in STEPS]
    if name in names:
        raise ValueError(f"a step named {name} is registered already")
    if before is not None and before not in names:
        raise ValueError(f"no step named {before}")
    STEPS.insert(names.index(before) if before is not None else len(STEPS), (name, factory))


def technique_names() -> list[str]:
    """Every registered technique's name, in the order they run."""
    return [name for name, _ in STEPS]


@dataclass(frozen=True)
class Considered:
    """A technique and what the options make of it."""

    name: str
    step: Optional[Step]
    status: str
    """``RUN``, ``SKIPPED`` (the options skip it) or ``UNAVAILABLE`` (``reason`` says why)."""
    reason: str = ""


def considered(options: SlimOptions) -> list[Considered]:
    """Every registered technique with what ``options`` make of it, in order (a factory giving None: left out)."""
    found = []
    for name, factory in STEPS:
        if name in options.skip:
            found.append(Considered(name, None, SKIPPED, "--skip"))
            continue
        made = factory(options)
        if isinstance(made, str):
            found.append(Considered(name, None, UNAVAILABLE, made))
        elif made is not None:
            found.append(Considered(name, made, RUN))
    return found


def check_options(options: SlimOptions) -> None:
    """Refuse, before any work, what cannot be made.

    Raises:
        InputError: ``options.skip`` names a technique that is not registered.
    """
    known = technique_names()
    unknown = [name for name in options.skip if name not in known]
    if unknown:
        raise InputError(f"--skip {','.join(unknown)}: no such technique (the techniques: {', '.join(known)})")


def steps_for(options: SlimOptions) -> list[Step]:
    """The steps that run with ``options``, in order."""
    return [item.step for item in considered(options) if item.step is not None]


__all__ = ["COMPRESS_LAYER_WORK", "CompressionStep", "Considered", "DeviceTimer", "Lessons", "MergeStep", "Program",
           "QuantizeStep", "STEPS", "Step", "StepContext", "StepFactory", "StepResult", "check_options", "considered",
           "register", "steps_for", "technique_names"]
