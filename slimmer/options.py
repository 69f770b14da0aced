"""How to slim: one keyword-only options object that every step reads, and the requests of the use cases hold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from rebirth.slimmer.replay import Replay

QAT_STEPS = 200
"""Quantization-aware training's steps at most, by default."""


@dataclass(frozen=True, kw_only=True)
class SlimOptions:
    backend: str = "xnnpack"
    """What the slimmed programs are lowered for (``portable`` or ``xnnpack``)."""
    max_accuracy_drop: float = 0.5
    """Points of held-out top-1, or of output fidelity where accuracy cannot be trusted (``fidelity``)."""
    confidence: float = 0.95
    """How sure a top-1 decision must be that a step is within ``max_accuracy_drop`` (``slimmer.judge``)."""
    exact_only: bool = False
    block_steps: int = 40
    end_to_end_steps: int = 40
    seed: int = 0
    max_merges: int = 100
    min_gain: float = 0.02
    """A learned step must save at least this fraction of the measured time to be worth its fine-tuning."""
    skip: tuple[str, ...] = ()
    """Techniques not to run, by their names in ``slimmer.steps.STEPS`` (``merges``, ``reduce_channels``,
    ``low_rank``, ``int8``; a string may list them with commas); every other one is considered, the one budget
    shared across them."""
    replay: Optional[Replay] = None
    """A recorded plan to make again (``slimmer.replay``, ``--plan FILE``): its kept steps, not the profile's best."""
    qat_steps: int = QAT_STEPS
    """Where post-training int8 is over the budget, train in int8 for at most this many steps (batches), stopping
    once it is within; 0: post-training int8 only."""

    def __post_init__(self) -> None:
        if not 0.5 <= self.confidence < 1:
            raise ValueError(f"confidence {self.confidence:g}: must be at least 0.5 and below 1")
        if isinstance(self.skip, str):
            object.__setattr__(self, "skip", tuple(name.strip() for name in self.skip.split(",") if name.strip()))
        else:
            object.__setattr__(self, "skip", tuple(self.skip))

