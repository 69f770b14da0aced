"""Zoo networks trained on the digits, trained once by this module and cached.

    python -m rebirth.slimmer.weights zoo:googlenet-small [...]   # trains what is not cached yet

The small variants (64 px) are trained at their own size. The full-size networks (224 px) are trained
the cheap way first: at 112 px (they are convolutional up to their global pool, and a step there costs
a quarter to a third of one at 224 px), then for two epochs at 224 px. A model without trained weights
(one rebirth does not train, or a user's) is slimmed against its own outputs (output fidelity) instead
of an accuracy.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import torch

EPOCHS = {"googlenet-small": 9, "googlenet-bn-small": 15, "alexnet-small": 9, "mobilenet_v2-small": 18,
          "resnet50-small": 12, "googlenet": 2, "googlenet-bn": 2, "resnet50": 2, "mobilenet_v2": 2}
"""Epochs at the network's own input size (the -small ones: as many steps as recipe 2 took on three quarters of the
digits; the full-size ones: two at 224 px, as one left GoogLeNet at 85.5% after 97.9% at 112 px, two at 96.6%) ..."""
SMALLER_FIRST = {"googlenet": (112, 6), "googlenet-bn": (112, 9), "resnet50": (112, 9), "mobilenet_v2": (112, 15)}
"""... after these ``(size in px, epochs)`` at a smaller size, where a network has them."""
RECIPE = 3
"""Bumped whenever the training code or data changes (epochs and rate are in the file name too), so that weights
cached by an older recipe are not used. 3: half the digits are held out (``slimmer.data.HELD_OUT``)."""
LEARNING_RATE = {"googlenet-small": 1e-3, "googlenet-bn-small": 1e-3, "alexnet-small": 1e-3, "mobilenet_v2-small": 3e-3,
                 "resnet50-small": 1e-3, "googlenet": 3e-4, "googlenet-bn": 1e-3, "resnet50": 1e-3,
                 "mobilenet_v2": 3e-3}


def weights_dir() -> Path:
    from rebirth.contract.cache import cache_root

    return cache_root() / "weights"


def weights_path(name: str, seed: int = 0) -> Path:
    """Where the weights of ``name`` trained with ``seed`` by the current recipe are cached."""
    first = "-{}px{}".format(*SMALLER_FIRST[name]) if name in SMALLER_FIRST else ""
    return weights_dir() / f"{name}-seed{seed}{first}-e{EPOCHS[name]}-lr{LEARNING_RATE[name]:g}-r{RECIPE}.pt"


def trainable(name: str) -> bool:
    return name in EPOCHS


def trained(name: str, seed: int = 0, say: Callable[[str], None] = lambda text: None):
    """``(model, example_inputs, accuracy)`` of zoo network ``name`` trained on digits (``trained_model``), with its
    held-out accuracy; None when rebirth does not train that network."""
    from rebirth.slimmer.data import digits
    from rebirth.slimmer.train import evaluate

    found = trained_model(name, seed, say)
    if found is None:
        return None
    model, inputs = found
    return model, inputs, evaluate(model, digits(inputs[0].shape[-1], seed=seed).held_out)


def trained_model(name: str, seed: int = 0, say: Callable[[str], None] = lambda text: None):
    """``(model, example_inputs)`` of zoo network ``name`` trained on digits, or None when rebirth does not train
    that network. Trains and caches on first use; a cached network is loaded without scoring it (a held-out pass
    of GoogLeNet at 224 px is half a minute here, and the slimmer's judge scores it anyway)."""
    from rebirth.models.zoo import build
    from rebirth.slimmer.data import digits
    from rebirth.slimmer.train import train

    if not trainable(name):
        return None
    model, inputs = build(name, seed)
    path = weights_path(name, seed)
    if path.is_file():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval(), inputs
    loaders = digits(inputs[0].shape[-1], seed=seed)
    if name in SMALLER_FIRST:
        size, epochs = SMALLER_FIRST[name]
        smaller = digits(size, seed=seed)
        say(f"training zoo:{name} on {smaller.name} ({epochs} epochs, then at {loaders.name.split(', ')[-1]}; "
            f"once, cached in {path})")
        train(model, smaller.train, smaller.held_out, epochs, LEARNING_RATE[name], seed,
              on_epoch=lambda done, total, top1: say(f"  epoch {done}/{total} at {size} px: held-out top-1 "
                                                     f"{top1:.1f}%"))
    say(f"training zoo:{name} on {loaders.name} ({EPOCHS[name]} epochs, once; cached in {path})")
    train(model, loaders.train, loaders.held_out, EPOCHS[name], LEARNING_RATE[name], seed,
          on_epoch=lambda done, total, top1: say(f"  epoch {done}/{total}: held-out top-1 {top1:.1f}%"))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save(model.state_dict(), partial)
    os.replace(partial, path)
    return model.eval(), inputs


def main(argv: Optional[list[str]] = None) -> int:
    for spec in argv if argv is not None else sys.argv[1:]:
        name = spec.removeprefix("zoo:")
        result = trained(name, say=print)
        print(f"zoo:{name}: " + (f"held-out top-1 {result[2].top1:.1f}%" if result else "not trained by rebirth"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
