"""Branch slimming (DeepRebirth, horizontal), approximate: the Inception pooling branch
(``pool k x k, stride 1 -> conv 1x1``) becomes one ``conv k x k``, initialised with the 1x1
weights at its centre and learned again afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Optional

import torch
from torch import fx, nn

from rebirth.slimmer.graph import (
    bias_of,
    conv2d_like,
    module_of,
    module_path,
    read_alone,
    replace_module,
    running_stats,
    submodule,
)
from rebirth.slimmer.passes.base import LayerCosts, Match, PairPass, ShapedPass, nodes_by_name
from rebirth.slimmer.passes.streamline import ACTIVATIONS, POOLS, _pair


class ReplacePoolBranch(PairPass):
    kind = "replace_pool_branch"
    exact = False
    into = 1

    def pairs(self, gm: fx.GraphModule) -> Iterator[tuple[fx.Node, fx.Node]]:
        """``(pool, conv)``: a stride-1 pool read only by a plain 1x1 convolution."""
        for node, pool, conv_node, conv in read_alone(gm):
            if isinstance(pool, POOLS) and type(conv) is nn.Conv2d and _pair(pool.stride) == (1, 1) \
                    and conv.kernel_size == (1, 1) and _pair(conv.stride) == (1, 1) and conv.groups == 1 \
                    and _pair(conv.padding) == (0, 0) and not getattr(pool, "ceil_mode", False):
                yield node, conv_node

    def estimate(self, gm: fx.GraphModule, match: Match, costs: LayerCosts) -> tuple[float, float]:
        """The pool's time saved; the 1x1 convolution's work grows by the pool's kernel area."""
        kernel = _pair(gm.get_submodule(match.layers[0]).kernel_size)
        return costs.measured(match.removed), costs.scaled(match.layers[1]) * (kernel[0] * kernel[1] - 1)

    def merged(self, pool: nn.Module, conv: nn.Module) -> nn.Module:
        assert isinstance(conv, nn.Conv2d)
        return widen_pointwise(conv, _pair(pool.kernel_size), _pair(pool.padding))


@torch.no_grad()
def widen_pointwise(conv: nn.Conv2d, kernel: tuple[int, int], padding: tuple[int, int]) -> nn.Conv2d:
    """A ``kernel``-sized convolution that starts as ``conv`` (1x1) at its centre, zeros around."""
    wide = nn.Conv2d(conv.in_channels, conv.out_channels, kernel, 1, padding, bias=conv.bias is not None)
    wide.weight.zero_()
    wide.weight[:, :, kernel[0] // 2, kernel[1] // 2] = conv.weight[:, :, 0, 0]
    if conv.bias is not None:
        bias_of(wide).copy_(conv.bias)
    return wide


CHANNEL_WISE = ACTIVATIONS + (nn.Identity, nn.Dropout, nn.BatchNorm2d)
"""Layers that keep each channel to itself: a convolution followed only by these can grow outputs."""


class RemoveThinBranch(ShapedPass):
    """Branch slimming (DeepRebirth, horizontal), approximate: a thin branch of a channel concat
    (at most ``THIN`` of the concat's width) is removed and its width given to the neighbouring
    branch, whose last convolution grows by as many outputs, on the same side of the concat, so every
    channel keeps its position and the layers after the concat are unchanged. The grown convolution
    (and a BatchNorm after it) is learned again to produce both branches' outputs."""

    kind = "remove_thin_branch"
    exact = False
    deletes_layers = True
    THIN = 0.25

    def matches(self, gm: fx.GraphModule) -> list[Match]:
        known = self.shapes(gm)
        found = []
        for cat in gm.graph.nodes:
            branches = _branches(gm, cat)
            if branches is None:
                continue
            widths = [known[chain[-1].name][1] for chain in branches]
            for index, chain in enumerate(branches):
                neighbour = branches[index - 1] if index else branches[1]
                grown = _growable_conv(gm, neighbour)
                if widths[index] > self.THIN * sum(widths) or grown is None or _growable_conv(gm, chain) is None:
                    continue
                tail = [module_path(node) for node in neighbour[neighbour.index(grown):]
                        if isinstance(module_of(gm, node), (nn.Conv2d, nn.BatchNorm2d))]
                removed = tuple(module_path(n) for n in chain)
                pair = (module_path(neighbour[-1]), removed[-1])
                together = pair if index else pair[::-1]
                found.append(Match(self.kind, tuple(n.name for n in chain) + (grown.name, cat.name),
                                   removed + (module_path(grown),), False, tuple(tail),
                                   anchors=((module_path(neighbour[-1]), together),), removed=removed))
        return found

    def estimate(self, gm: fx.GraphModule, match: Match, costs: LayerCosts) -> tuple[float, float]:
        """The branch's time saved; the grown convolution's work grows by the branch's share of it."""
        grown = gm.get_submodule(match.layers[-1])
        assert isinstance(grown, nn.Conv2d)
        width = [layer for layer in map(gm.get_submodule, match.removed) if isinstance(layer, nn.Conv2d)][-1]
        return costs.measured(match.removed), costs.scaled(match.layers[-1]) * width.out_channels / grown.out_channels

    def rewrite(self, gm: fx.GraphModule, match: Match) -> None:
        nodes = nodes_by_name(gm)
        chain, cat = [nodes[name] for name in match.nodes[:-2]], nodes[match.nodes[-1]]
        assert isinstance(cat.args[0], (list, tuple))
        inputs = list(cat.args[0])
        index = inputs.index(chain[-1])
        growable = _growable_conv(gm, chain)
        assert growable is not None, "the match found the branch's convolution"
        width = submodule(gm, growable, nn.Conv2d).out_channels
        for target in match.regenerated:
            layer = gm.get_submodule(target)
            if isinstance(layer, nn.Conv2d):
                replace_module(gm, target, grow_conv(layer, width, first=index == 0))
            else:
                assert isinstance(layer, nn.BatchNorm2d), f"{target} is neither a Conv2d nor a BatchNorm2d"
                replace_module(gm, target, grow_batchnorm(layer, width, first=index == 0))
        cat.args = (inputs[:index] + inputs[index + 1:],) + tuple(cat.args[1:])


def _branches(gm: fx.GraphModule, cat: fx.Node) -> Optional[list[list[fx.Node]]]:
    """The chains of single-input layers from one fork to each input of a channel concat, else None."""
    if cat.op != "call_function" or cat.target is not torch.cat or not isinstance(cat.args[0], (list, tuple)):
        return None
    dim = cat.args[1] if len(cat.args) > 1 else cat.kwargs.get("dim", 0)
    if dim != 1 or len(cat.args[0]) < 2:
        return None
    chains, sources = [], set()
    for node in cat.args[0]:
        chain: list[fx.Node] = []
        while isinstance(node, fx.Node) and node.op == "call_module" and len(node.users) == 1 \
                and len(node.args) == 1 and not node.kwargs and isinstance(node.args[0], fx.Node):
            chain.insert(0, node)
            node = node.args[0]
        if not chain:
            return None
        chains.append(chain)
        sources.add(node)
    return chains if len(sources) == 1 else None


def _growable_conv(gm: fx.GraphModule, chain: list[fx.Node]) -> Optional[fx.Node]:
    """The branch's last convolution when only channel-wise layers follow it, else None."""
    for position in range(len(chain) - 1, -1, -1):
        module = module_of(gm, chain[position])
        if type(module) is nn.Conv2d and module.groups == 1:
            return chain[position]
        if not isinstance(module, CHANNEL_WISE) or (isinstance(module, nn.BatchNorm2d)
                                                    and module.running_mean is None):
            return None
    return None


@torch.no_grad()
def grow_conv(conv: nn.Conv2d, extra: int, first: bool) -> nn.Conv2d:
    """``conv`` with ``extra`` more outputs, new ones first or last, freshly initialised."""
    grown = conv2d_like(conv, conv.out_channels + extra, 1, conv.bias is not None)
    kept = slice(extra, None) if first else slice(0, conv.out_channels)
    grown.weight[kept] = conv.weight
    if conv.bias is not None:
        bias_of(grown)[kept] = conv.bias
    return grown


@torch.no_grad()
def grow_batchnorm(norm: nn.BatchNorm2d, extra: int, first: bool) -> nn.BatchNorm2d:
    """``norm`` with ``extra`` more channels that start as the identity."""
    grown = nn.BatchNorm2d(norm.num_features + extra, norm.eps, norm.momentum, norm.affine).eval()
    mean, var = running_stats(grown)
    var.fill_(1 - norm.eps)
    kept = slice(extra, None) if first else slice(0, norm.num_features)
    mean[kept], var[kept] = running_stats(norm)
    if norm.affine:
        grown.weight[kept], grown.bias[kept] = norm.weight, norm.bias
    return grown
