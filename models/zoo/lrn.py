"""Local response normalization built from ops every ExecuTorch runtime has.

``nn.LocalResponseNorm`` decomposes to ``aten::avg_pool3d``, which the portable
runtime lacks. This module computes the same function with ``avg_pool2d`` over a
reshaped tensor, so models from the DeepRebirth paper (GoogLeNet, AlexNet) run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LocalResponseNorm(nn.Module):
    """Drop-in replacement for ``nn.LocalResponseNorm`` on NCHW inputs.

    Args:
        size: number of neighbouring channels summed over.
        alpha: multiplicative factor.
        beta: exponent.
        k: additive factor.
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        squared = (x * x).reshape(n, 1, c, h * w)
        padded = F.pad(squared, (0, 0, self.size // 2, (self.size - 1) // 2))
        window_mean = F.avg_pool2d(padded, kernel_size=(self.size, 1), stride=1)
        denominator = (window_mean.reshape(n, c, h, w) * self.alpha + self.k) ** self.beta
        return x / denominator

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


def kaiming_init(model: nn.Module) -> nn.Module:
    """He-normal weights and zero biases for every conv and linear layer: deep ReLU networks
    without BatchNorm (GoogLeNet, AlexNet) do not learn from PyTorch's default init."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model
