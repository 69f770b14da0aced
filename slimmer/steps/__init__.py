"""The slimming techniques, each a step behind one protocol (``Step``), and the ordered registry the driver runs.

A new technique is one module here (a class with ``name``, ``offers`` and ``run``) and one line in ``STEPS``: a
factory that makes the step when the options ask for it. The driver (``slimmer.slim``) knows no step by class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

from rebirth.contract.slim import ABOUT, REDUCED
from rebirth.slimmer.options import SlimOptions
from rebirth.slimmer.passes import DecomposeLowRank, ReduceChannels
from rebirth.slimmer.steps.base import DeviceTimer, Lessons, Program, Step, StepContext, StepResult
from rebirth.slimmer.steps.compress import COMPRESS_LAYER_SHARE, CompressionStep
from rebirth.slimmer.steps.int8 import QuantizeStep
from rebirth.slimmer.steps.merges import MergeStep

StepFactory = Callable[[SlimOptions], Optional[Step]]
"""The step the options ask for, or None."""


def _merges(options: SlimOptions) -> Step:
    return MergeStep()


def _channels(options: SlimOptions) -> Optional[Step]:
    return CompressionStep(ReduceChannels, REDUCED, ABOUT[REDUCED]) if options.reduce_channels else None


def _low_rank(options: SlimOptions) -> Optional[Step]:
    return CompressionStep(DecomposeLowRank) if options.decompose else None


def _int8(options: SlimOptions) -> Optional[Step]:
    return QuantizeStep(options.quantize) if options.quantize else None


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


def steps_for(options: SlimOptions) -> list[Step]:
    """The steps ``options`` ask for, in order."""
    return [step for step in (factory(options) for _, factory in STEPS) if step is not None]


__all__ = ["COMPRESS_LAYER_SHARE", "CompressionStep", "DeviceTimer", "Lessons", "MergeStep", "Program", "QuantizeStep",
           "STEPS", "Step", "StepContext", "StepFactory", "StepResult", "register", "steps_for"]
