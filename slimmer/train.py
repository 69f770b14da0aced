"""Training and evaluation on a classification data set: deterministic with a seed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

EpochCallback = Callable[[int, int, float], None]
"""Called as ``on_epoch(done, total, held_out_top1)``."""


@dataclass(frozen=True)
class Accuracy:
    """Held-out accuracy in points (0-100); ``top5`` only where there are 5 or more classes."""

    top1: float
    top5: Optional[float]
    samples: int


def predictions(logits: torch.Tensor) -> torch.Tensor:
    """The class each row of ``logits`` predicts: the highest, and among equal ones the first. The one rule for
    top-1 everywhere (PyTorch's model, the runtime's outputs, agreement between two models), so a tie, such as
    the all-zero logits a ReLU before a pooled head gives, is broken alike wherever it is scored."""
    return logits.argmax(dim=1)


def score(logits: torch.Tensor, labels: torch.Tensor) -> Accuracy:
    """Top-1 (``predictions``) and top-5 of ``logits`` against ``labels``; a top-1 hit is a top-5 hit."""
    classes = logits.shape[1]
    hits1 = predictions(logits) == labels
    top = logits.topk(min(5, classes), dim=1).indices
    hits5 = hits1 | (top == labels[:, None]).any(dim=1)
    total = len(labels)
    return Accuracy(100.0 * hits1.sum().item() / total,
                    100.0 * hits5.sum().item() / total if classes >= 5 else None, total)


def laid_out(images: torch.Tensor, model: Optional[nn.Module] = None) -> torch.Tensor:
    """``images`` as the slimmer runs them through ``model``: channels last where they are a 4-d batch and the model
    is a module PyTorch runs op by op. Its CPU convolutions and pools are faster so (GoogLeNet at 224 px: a held-out
    pass 1.46x, its logits within 6e-6), and every forward pass of a slimming through such a model (teacher and
    student, training and judging) uses the one layout, so that they agree to the last bit. An exported program
    (int8's, made by ``torch.export``) gets them contiguous: its graph was traced with that layout and may depend
    on it (its int8 programs scored at chance with channels-last inputs)."""
    if images.dim() != 4 or (model is not None and exported(model)):
        return images.contiguous()
    return images.contiguous(memory_format=torch.channels_last)


def exported(model: nn.Module) -> bool:
    """Whether ``model`` is a graph of ATen operators (``torch.export``'s), rather than of modules and functions."""
    graph = getattr(model, "graph", None)
    return graph is not None and any(node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload)
                                     for node in graph.nodes)


INFERENCE_ELEMENTS = 8 * 3 * 224 * 224
"""The most input elements one inference forward pass takes at a time (eight 224-px images; a 64-px batch of 98).
A loader's batch is cut into pieces of that size: the activations of a larger batch leave the CPU's caches, and
GoogLeNet at 224 px scored its held-out images 3.1x slower per image in batches of 128 than of 8 on this host
(98 against 31 ms); at 64 px a batch of 98 is as fast as one of 256."""


def pieces(images: torch.Tensor) -> list[torch.Tensor]:
    """``images`` cut along the batch into pieces of at most ``INFERENCE_ELEMENTS`` elements (one image at least)."""
    if images.dim() == 0 or len(images) == 0:
        return [images]
    per = max(1, INFERENCE_ELEMENTS // max(1, images[0].numel()))
    return list(images.split(per))


@torch.no_grad()
def logits_of(model: nn.Module, loader) -> tuple[torch.Tensor, torch.Tensor]:
    """``model``'s logits for every sample of ``loader``, in order, and their labels, each batch run in ``pieces``."""
    model.eval()
    logits: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    for images, batch_labels in loader:
        logits.extend(model(laid_out(piece, model)) for piece in pieces(images))
        labels.append(torch.as_tensor(batch_labels))
    return torch.cat(logits), torch.cat(labels)


def evaluate(model: nn.Module, loader: DataLoader) -> Accuracy:
    """``model``'s held-out accuracy (``score``)."""
    return score(*logits_of(model, loader))


def train(model: nn.Module, train_loader: DataLoader, held_out: DataLoader, epochs: int, lr: float = 3e-4,
          seed: int = 0, on_epoch: Optional[EpochCallback] = None) -> Accuracy:
    """Train ``model`` in place with AdamW, cross-entropy and a cosine-decaying rate; the held-out
    accuracy at the end."""
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * len(train_loader))
    accuracy = evaluate(model, held_out)
    for epoch in range(epochs):
        model.train()
        for images, labels in train_loader:
            optimizer.zero_grad()
            F.cross_entropy(model(laid_out(images, model)), labels).backward()
            optimizer.step()
            schedule.step()
        accuracy = evaluate(model, held_out)
        if on_epoch:
            on_epoch(epoch + 1, epochs, accuracy.top1)
    model.eval()
    return accuracy
