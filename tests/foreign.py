"""A network the zoo does not have (SqueezeNet-like fire modules with BatchNorm), and a
function exporting it with plain ExecuTorch calls, not rebirth's, as a user would."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, expand: int):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.squeeze_bn = nn.BatchNorm2d(squeeze)
        self.squeeze_act = nn.ReLU()
        self.expand1 = nn.Conv2d(squeeze, expand, 1)
        self.expand3 = nn.Conv2d(squeeze, expand, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x):
        x = self.squeeze_act(self.squeeze_bn(self.squeeze(x)))
        return self.act(torch.cat([self.expand1(x), self.expand3(x)], 1))


class FireNet(nn.Module):
    def __init__(self, classes: int = 7):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, stride=2, padding=1)
        self.stem_act = nn.ReLU()
        self.pool1 = nn.MaxPool2d(3, 2, 1)
        self.fire1 = Fire(32, 16, 32)
        self.fire2 = Fire(64, 16, 32)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.fire3 = Fire(64, 24, 48)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.head = nn.Linear(96, classes)
        self.prob = nn.Softmax(dim=1)

    def forward(self, x):
        for module in self.children():
            x = module(x)
        return x


def make_firenet():
    """(model, example_inputs) with warmed-up BatchNorm statistics, for file.py:NAME."""
    torch.manual_seed(1)
    model = FireNet()
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 3, 48, 48))
    return model.eval(), (torch.randn(1, 3, 48, 48),)


def export_plain(model, inputs, backend: str, pte: Path) -> Path:
    """Export with ExecuTorch's own API, writing NAME.pte and NAME.etrecord."""
    from executorch.exir import to_edge_transform_and_lower

    partitioners = []
    if backend == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        partitioners = [XnnpackPartitioner()]
    program = to_edge_transform_and_lower(torch.export.export(model, inputs), partitioner=partitioners,
                                          generate_etrecord=True).to_executorch()
    pte.write_bytes(program.buffer)
    program.get_etrecord().save(str(pte.with_suffix(".etrecord")))
    return pte
