"""BatchNorm folded into a neighbouring convolution or linear layer (exact).

Into the preceding layer: ``bn(conv(x))`` is one convolution with scaled weights and a shifted
bias. Into the following convolution: ``conv(bn(x))`` is exact only when the convolution pads
nothing (padding zeros would not be shifted) and is not grouped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Optional, TypeGuard

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from rebirth.slimmer.graph import bias_of, conv2d_like, module_of, only_user, read_alone, running_stats
from rebirth.slimmer.passes.base import PairPass

# (layer, BatchNorm) -> fuser, as data: extend it for other layer types.
FUSERS = {
    (nn.Conv1d, nn.BatchNorm1d): fuse_conv_bn_eval,
    (nn.Conv2d, nn.BatchNorm2d): fuse_conv_bn_eval,
    (nn.Conv3d, nn.BatchNorm3d): fuse_conv_bn_eval,
    (nn.Linear, nn.BatchNorm1d): fuse_linear_bn_eval,
}


def has_running_stats(bn: Optional[nn.Module]) -> TypeGuard[nn.modules.batchnorm._BatchNorm]:
    return isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.running_mean is not None \
        and bn.running_var is not None


def _fuser(layer: nn.Module, bn: nn.Module):
    return next((fuse for (kind, norm), fuse in FUSERS.items() if type(layer) is kind and type(bn) is norm), None)


class FoldBatchNormIntoPrevious(PairPass):
    kind = "fold_bn"
    exact = True
    into = 0

    def pairs(self, gm: fx.GraphModule) -> Iterator[tuple[fx.Node, fx.Node]]:
        """``(layer, bn)``: a BatchNorm with running statistics, the only reader of a layer it folds into."""
        node: fx.Node
        for node in gm.graph.nodes:
            bn = module_of(gm, node)
            producer = node.args[0] if node.args else None
            if not has_running_stats(bn) or not isinstance(producer, fx.Node):
                continue
            layer = module_of(gm, producer)
            if layer is not None and _fuser(layer, bn) and only_user(producer) is node:
                yield producer, node

    def merged(self, layer: nn.Module, bn: nn.Module) -> nn.Module:
        return _fuser(layer, bn)(layer, bn)


class FoldBatchNormIntoNext(PairPass):
    kind = "fold_bn_forward"
    exact = True
    into = 1

    def pairs(self, gm: fx.GraphModule) -> Iterator[tuple[fx.Node, fx.Node]]:
        """``(bn, conv)``: a BatchNorm2d with running statistics whose only reader is a convolution it folds into
        exactly."""
        for node, bn, consumer, conv in read_alone(gm):
            if has_running_stats(bn) and isinstance(bn, nn.BatchNorm2d) and type(conv) is nn.Conv2d \
                    and _exact_after_bn(conv):
                yield node, consumer

    def merged(self, bn: nn.Module, conv: nn.Module) -> nn.Module:
        assert isinstance(bn, nn.BatchNorm2d) and isinstance(conv, nn.Conv2d)
        return fold_bn_into_next(bn, conv)


def _exact_after_bn(conv: nn.Conv2d) -> bool:
    no_padding = conv.padding == "valid" or all(p == 0 for p in conv.padding)
    return no_padding and conv.groups == 1


@torch.no_grad()
def fold_bn_into_next(bn: nn.BatchNorm2d, conv: nn.Conv2d) -> nn.Conv2d:
    """``conv(bn(x))`` as one convolution: the BN's scale goes into the input channels of the weights."""
    mean, var = running_stats(bn)
    scale = (bn.weight if bn.affine else torch.ones_like(var)) / torch.sqrt(var + bn.eps)
    shift = (bn.bias if bn.affine else torch.zeros_like(mean)) - mean * scale
    fused = conv2d_like(conv, conv.out_channels, conv.groups, bias=True)
    fused.weight.copy_(conv.weight * scale.reshape(1, -1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
    bias_of(fused).copy_(bias + (conv.weight * shift.reshape(1, -1, 1, 1)).sum(dim=(1, 2, 3)))
    return fused
