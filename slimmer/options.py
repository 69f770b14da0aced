"""How to slim: one keyword-only options object that every step reads, and the requests of the use cases hold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rebirth.contract.errors import InputError

QAT_STEPS = 200
"""Quantization-aware training's steps at most, by default."""


@dataclass(frozen=True, kw_only=True)
class SlimOptions:
    backend: str = "xnnpack"
    """What the slimmed programs are lowered for (``portable`` or ``xnnpack``)."""
    max_accuracy_drop: float = 0.5
    """Points of held-out top-1, or of output fidelity where accuracy cannot be trusted (``fidelity``)."""
    exact_only: bool = False
    block_steps: int = 40
    end_to_end_steps: int = 40
    seed: int = 0
    max_merges: int = 100
    min_gain: float = 0.02
    """A learned step must save at least this fraction of the measured time to be worth its fine-tuning."""
    quantize: Optional[str] = None
    """``int8``: quantize after the merges (``slimmer.quantize``), if it stays within the budget."""
    qat_steps: int = QAT_STEPS
    """Where post-training int8 is over the budget, train in int8 for at most this many steps (batches), stopping
    once it is within; 0: post-training int8 only."""
    decompose: bool = False
    """After the merges, decompose the layers that cost the most into low-rank chains (``DecomposeLowRank``)."""
    reduce_channels: bool = False
    """After the merges (before any decomposition), cut the channels between convolutions where the time is
    (``ReduceChannels``)."""


def check_options(options: SlimOptions) -> None:
    """Refuse, before any work, what cannot be made.

    Raises:
        InputError: int8 asked for a backend other than XNNPACK.
    """
    if options.quantize and options.backend != "xnnpack":
        raise InputError(f"--quantize {options.quantize} makes a program for XNNPACK (its quantizer and int8 "
                         f"kernels); drop --backend {options.backend} or --quantize")
