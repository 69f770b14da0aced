"""The programs the paired benchmark compares: a small convolutional network, and the same network with
one more convolution, sized to add about a tenth to its work (a regression of known cost)."""

import torch
from torch import nn


def _net(extra: bool) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
              nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1),
              nn.ReLU()]
    if extra:
        layers += [nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU()]  # +9.4M multiply-adds on 98M
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers).eval()


def base():
    return _net(False), (torch.randn(1, 3, 64, 64),)


def slower():
    return _net(True), (torch.randn(1, 3, 64, 64),)
