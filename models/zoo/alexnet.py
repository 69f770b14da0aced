"""AlexNet as in Krizhevsky et al. 2012 (single tower), with its two LRN layers."""

from __future__ import annotations

import torch
from torch import nn

from rebirth.models.zoo.lrn import LocalResponseNorm, kaiming_init


class AlexNet(nn.Module):
    """``width`` scales the convolution channels, ``fc_width`` the two hidden layers."""

    def __init__(self, num_classes: int = 10, width: float = 1.0, fc_width: int = 4096):
        super().__init__()

        def ch(c: int) -> int:
            return max(4, int(round(c * width)))

        self.conv1 = nn.Conv2d(3, ch(96), 11, stride=4, padding=2)
        self.relu1 = nn.ReLU()
        self.lrn1 = LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
        self.pool1 = nn.MaxPool2d(3, 2)
        self.conv2 = nn.Conv2d(ch(96), ch(256), 5, padding=2)
        self.relu2 = nn.ReLU()
        self.lrn2 = LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
        self.pool2 = nn.MaxPool2d(3, 2)
        self.conv3 = nn.Conv2d(ch(256), ch(384), 3, padding=1)
        self.relu3 = nn.ReLU()
        self.conv4 = nn.Conv2d(ch(384), ch(384), 3, padding=1)
        self.relu4 = nn.ReLU()
        self.conv5 = nn.Conv2d(ch(384), ch(256), 3, padding=1)
        self.relu5 = nn.ReLU()
        self.pool5 = nn.MaxPool2d(3, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(6)
        self.flatten = nn.Flatten(1)
        self.drop6 = nn.Dropout(0.5)
        self.fc6 = nn.Linear(ch(256) * 36, fc_width)
        self.relu6 = nn.ReLU()
        self.drop7 = nn.Dropout(0.5)
        self.fc7 = nn.Linear(fc_width, fc_width)
        self.relu7 = nn.ReLU()
        self.fc8 = nn.Linear(fc_width, num_classes)
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.children():
            x = module(x)
        return x
