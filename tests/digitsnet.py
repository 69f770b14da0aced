"""A small digit classifier with wide 3x3 layers (16 px), trained once per session by the
``trained_digits_net`` fixture: what the compression passes are tried on."""

import torch
from torch import nn


class DigitsNet(nn.Module):
    """A small digit classifier with wide 3x3 layers, for 16 px images."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc(torch.relu(self.conv3(x)).mean((2, 3)))


SOURCE = """
import torch
from tests.digitsnet import DigitsNet

def make():
    net = DigitsNet()
    net.load_state_dict(torch.load({weights!r}, weights_only=True))
    return net.eval(), (torch.randn(1, 3, 16, 16),)

def loaders():
    from rebirth.slimmer.data import digits
    return digits(16)
"""


def times_by_work(model: nn.Module, inputs: tuple) -> dict[str, float]:
    """A profile's p50 ms per layer in which each conv and linear layer's time follows its work (1e-5 ms per
    multiply-accumulate)."""
    from rebirth.slimmer.cost import layer_macs
    from rebirth.slimmer.graph import trace

    return {layer: 1e-5 * work for layer, work in layer_macs(trace(model), inputs).items()}
