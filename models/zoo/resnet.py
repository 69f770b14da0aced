"""ResNet-50 (He et al. 2016): bottleneck blocks with BatchNorm."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout))


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = conv_bn(cin, mid, 1)
        self.relu1 = nn.ReLU()
        self.conv2 = conv_bn(mid, mid, 3, stride)
        self.relu2 = nn.ReLU()
        self.conv3 = conv_bn(mid, cout, 1)
        self.downsample = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()
        self.relu3 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.relu3(self.conv3(out) + self.downsample(x))


class ResNet50(nn.Module):
    """``width`` scales every channel count; ``blocks`` the bottlenecks per stage."""

    def __init__(self, num_classes: int = 10, width: float = 1.0, blocks: tuple[int, ...] = (3, 4, 6, 3)):
        super().__init__()

        def ch(c: int) -> int:
            return max(4, int(round(c * width)))

        self.stem = nn.Sequential(conv_bn(3, ch(64), 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        cin = ch(64)
        for index, (count, mid) in enumerate(zip(blocks, (64, 128, 256, 512))):
            layers = []
            for block in range(count):
                stride = 2 if block == 0 and index > 0 else 1
                layers.append(Bottleneck(cin, ch(mid), ch(mid * 4), stride))
                cin = ch(mid * 4)
            self.add_module(f"layer{index + 1}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.children():
            x = module(x)
        return x
