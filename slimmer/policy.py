"""When a model counts as trained, and what data a model is slimmed and judged with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

from torch import nn

from rebirth.slimmer.data import Loaders, digits
from rebirth.slimmer.train import evaluate

Say = Callable[[str], None]

CHANCE_MARGIN = 0.5
"""A trained model beats chance by at least half of it ..."""
CHANCE_SIGMAS = 3
"""... and by three standard deviations of a guesser's score on that many samples."""


def learned(model: nn.Module, loaders: Loaders, say: Say) -> bool:
    """Whether ``model`` learned the loaders' task: held-out top-1 clearly above chance. A model that did
    not is judged by the fidelity of its outputs instead (said through ``say``)."""
    accuracy = evaluate(model, loaders.held_out)
    chance = 1.0 / max(1, loaders.classes)
    spread = (chance * (1 - chance) / max(1, accuracy.samples)) ** 0.5
    result = accuracy.top1 > 100 * (chance + max(CHANCE_MARGIN * chance, CHANCE_SIGMAS * spread))
    if not result:
        say(f"the model scores {accuracy.top1:.1f}% top-1 on {loaders.name}, about chance ({100 * chance:.1f}%): "
            "it counts as untrained")
    return result


def digits_for(inputs: tuple, say: Say) -> tuple[Optional[Loaders], list[str]]:
    """The built-in digits at the model's input size, for a model taking one square 3-channel image;
    else None and the message that says only exact merges can be made."""
    shape = tuple(inputs[0].shape) if len(inputs) == 1 else ()
    if len(shape) == 4 and shape[1] == 3 and shape[2] == shape[3]:
        return digits(shape[2]), []
    message = (f"no data set fits inputs of shape {shape}: only exact merges were applied "
               "(approximate ones need data to learn from)")
    say(message)
    return None, [message]
