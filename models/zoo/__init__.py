"""The model zoo: the DeepRebirth paper's networks and modern ones, each with a small variant.

Every entry builds ``(model, example_inputs)`` with the model in eval mode. Models have
10 outputs (the digits data set the slimmer trains on) and take 3-channel images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

__all__ = ["ZOO", "ZooEntry", "build", "names"]


@dataclass(frozen=True)
class ZooEntry:
    """One zoo network: how to build it and the input size it takes."""

    name: str
    description: str
    input_size: int
    factory: Callable[[], nn.Module]


def _googlenet(width: float, batch_norm: bool = False) -> Callable[[], nn.Module]:
    def make():
        from rebirth.models.zoo.googlenet import GoogLeNet

        return GoogLeNet(width=width, batch_norm=batch_norm)

    return make


def _alexnet(width: float, fc_width: int) -> Callable[[], nn.Module]:
    def make():
        from rebirth.models.zoo.alexnet import AlexNet

        return AlexNet(width=width, fc_width=fc_width)

    return make


def _resnet50(width: float, blocks: tuple[int, ...]) -> Callable[[], nn.Module]:
    def make():
        from rebirth.models.zoo.resnet import ResNet50

        return ResNet50(width=width, blocks=blocks)

    return make


def _mobilenet_v2(width: float) -> Callable[[], nn.Module]:
    def make():
        from rebirth.models.zoo.mobilenet import MobileNetV2

        return MobileNetV2(width=width)

    return make


ZOO: dict[str, ZooEntry] = {
    entry.name: entry
    for entry in [
        ZooEntry("googlenet", "GoogLeNet / Inception v1 with LRN (DeepRebirth's main network)", 224, _googlenet(1.0)),
        ZooEntry("googlenet-small", "GoogLeNet at 1/4 width, 64 px", 64, _googlenet(0.25)),
        ZooEntry("googlenet-bn", "GoogLeNet with BatchNorm instead of LRN", 224, _googlenet(1.0, True)),
        ZooEntry("googlenet-bn-small", "GoogLeNet-BN at 1/4 width, 64 px", 64, _googlenet(0.25, True)),
        ZooEntry("alexnet", "AlexNet with LRN", 224, _alexnet(1.0, 4096)),
        ZooEntry("alexnet-small", "AlexNet at 1/4 width, 64 px", 64, _alexnet(0.25, 256)),
        ZooEntry("resnet50", "ResNet-50 with BatchNorm", 224, _resnet50(1.0, (3, 4, 6, 3))),
        ZooEntry("resnet50-small", "ResNet-50 at 1/4 width, 64 px", 64, _resnet50(0.25, (3, 4, 6, 3))),
        ZooEntry("mobilenet_v2", "MobileNetV2", 224, _mobilenet_v2(1.0)),
        ZooEntry("mobilenet_v2-small", "MobileNetV2 at 1/4 width, 64 px", 64, _mobilenet_v2(0.25)),
    ]
}


def names() -> list[str]:
    """Names accepted after ``zoo:``."""
    return sorted(ZOO)


def build(name: str, seed: int = 0):
    """Build a zoo network with seeded weights.

    Args:
        name: a key of ``ZOO`` such as ``googlenet-small``.
        seed: seed for the weight initialisation.

    Returns:
        ``(model, example_inputs)`` with the model in eval mode.

    Raises:
        KeyError: the name is not in the zoo.
    """
    import torch

    entry = ZOO[name]
    torch.manual_seed(seed)
    model = entry.factory().eval()
    example = (torch.randn(1, 3, entry.input_size, entry.input_size),)
    return model, example
