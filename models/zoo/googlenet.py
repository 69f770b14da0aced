"""GoogLeNet (Inception v1) as in Szegedy et al. 2015 and the DeepRebirth paper: LRN, no BatchNorm;
or, with ``batch_norm=True``, BatchNorm after every convolution and no LRN (as modern Inceptions)."""

from __future__ import annotations

import torch
from torch import nn

from rebirth.models.zoo.lrn import LocalResponseNorm, kaiming_init


def conv_relu(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0,
              batch_norm: bool = False) -> nn.Sequential:
    if batch_norm:
        return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=False))
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.ReLU(inplace=False))


def _last_conv(branch: nn.Module) -> nn.Conv2d:
    """The branch's last convolution, whose outputs are the branch's."""
    return [module for module in branch.modules() if isinstance(module, nn.Conv2d)][-1]


class Inception(nn.Module):
    """Four parallel branches (1x1; 1x1-3x3; 1x1-5x5; pool-1x1) concatenated on channels."""

    def __init__(self, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pool_proj: int, *,
                 batch_norm: bool = False):
        super().__init__()
        bn = batch_norm
        self.branch1 = conv_relu(cin, c1, 1, batch_norm=bn)
        self.branch2 = nn.Sequential(conv_relu(cin, c3r, 1, batch_norm=bn),
                                     conv_relu(c3r, c3, 3, padding=1, batch_norm=bn))
        self.branch3 = nn.Sequential(conv_relu(cin, c5r, 1, batch_norm=bn),
                                     conv_relu(c5r, c5, 5, padding=2, batch_norm=bn))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_relu(cin, pool_proj, 1, batch_norm=bn))

    @property
    def out_channels(self) -> int:
        branches = [self.branch1, self.branch2, self.branch3, self.branch4]
        return sum(_last_conv(branch).out_channels for branch in branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


# (c1, c3r, c3, c5r, c5, pool_proj) for 3a..5b, from the paper's Table 1.
INCEPTION_CONFIG = {
    "inception3a": (64, 96, 128, 16, 32, 32),
    "inception3b": (128, 128, 192, 32, 96, 64),
    "inception4a": (192, 96, 208, 16, 48, 64),
    "inception4b": (160, 112, 224, 24, 64, 64),
    "inception4c": (128, 128, 256, 24, 64, 64),
    "inception4d": (112, 144, 288, 32, 64, 64),
    "inception4e": (256, 160, 320, 32, 128, 128),
    "inception5a": (256, 160, 320, 32, 128, 128),
    "inception5b": (384, 192, 384, 48, 128, 128),
}
POOL_AFTER = {"inception3b", "inception4e"}


class GoogLeNet(nn.Module):
    """Inception v1 with its two LRN layers (or BatchNorm instead); ``width`` scales every channel count."""

    def __init__(self, num_classes: int = 10, width: float = 1.0, batch_norm: bool = False):
        super().__init__()

        def ch(c: int) -> int:
            return max(4, int(round(c * width)))

        bn = batch_norm
        self.conv1 = conv_relu(3, ch(64), 7, stride=2, padding=3, batch_norm=bn)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        if not bn:
            self.lrn1 = LocalResponseNorm(5, alpha=1e-4, beta=0.75)
        self.conv2_reduce = conv_relu(ch(64), ch(64), 1, batch_norm=bn)
        self.conv2 = conv_relu(ch(64), ch(192), 3, padding=1, batch_norm=bn)
        if not bn:
            self.lrn2 = LocalResponseNorm(5, alpha=1e-4, beta=0.75)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        cin = ch(192)
        for name, cfg in INCEPTION_CONFIG.items():
            block = Inception(cin, *(ch(c) for c in cfg), batch_norm=bn)
            self.add_module(name, block)
            cin = block.out_channels
            if name in POOL_AFTER:
                self.add_module("pool" + name[-2], nn.MaxPool2d(3, 2, ceil_mode=True))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(0.4)
        self.fc = nn.Linear(cin, num_classes)
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.children():
            x = module(x)
        return x
