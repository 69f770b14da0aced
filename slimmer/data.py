"""The built-in data set: scikit-learn's handwritten digits (1797 real 8x8 images, 10 classes),
split once into training and held-out parts, upsampled to the model's input size."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

HELD_OUT = 0.25
SPLIT_SEED = 0


@dataclass(frozen=True)
class Loaders:
    train: DataLoader
    held_out: DataLoader
    name: str
    classes: int


def digits_tensors(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All digits as ``(N, 3, size, size)`` float images (zero mean, unit variance) and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = ((images - images.mean()) / images.std()).repeat(1, 3, 1, 1)
    return images, torch.tensor(digits.target, dtype=torch.long)


def digits(size: int, batch_size: int = 32, seed: int = 0) -> Loaders:
    """Training and held-out loaders; the split is the same every time, the shuffling follows ``seed``."""
    images, labels = digits_tensors(size)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    cut = int(len(labels) * (1 - HELD_OUT))
    train, held = order[:cut], order[cut:]
    shuffle = torch.Generator().manual_seed(seed)
    return Loaders(DataLoader(TensorDataset(images[train], labels[train]), batch_size, shuffle=True, generator=shuffle),
                   DataLoader(TensorDataset(images[held], labels[held]), 256),
                   f"digits (scikit-learn, {len(train)} train / {len(held)} held out, {size} px)", 10)
