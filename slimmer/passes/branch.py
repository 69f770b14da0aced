"""Branch slimming (DeepRebirth, horizontal), approximate: the Inception pooling branch
(``pool k x k, stride 1 -> conv 1x1``) becomes one ``conv k x k``, initialised with the 1x1
weights at its centre and learned again afterwards.
"""

from __future__ import annotations

import torch
from torch import fx, nn

from slimmer.graph import bypass, module_of, only_user, replace_module
from slimmer.passes.base import Match, ShapedPass, SlimPass, nodes_by_name
from slimmer.passes.streamline import ACTIVATIONS, POOLS, _pair


class ReplacePoolBranch(SlimPass):
    kind = "replace_pool_branch"
    exact = False

    def matches(self, gm: fx.GraphModule) -> list[Match]:
        found = []
        for node in gm.graph.nodes:
            pool = module_of(gm, node)
            conv_node = only_user(node) if isinstance(pool, POOLS) else None
            conv = module_of(gm, conv_node) if conv_node is not None else None
            if conv is None or type(conv) is not nn.Conv2d or conv_node.args[0] is not node:
                continue
            if _pair(pool.stride) == (1, 1) and conv.kernel_size == (1, 1) and _pair(conv.stride) == (1, 1) \
                    and conv.groups == 1 and _pair(conv.padding) == (0, 0) and not getattr(pool, "ceil_mode", False):
                found.append(Match(self.kind, (node.name, conv_node.name), (node.target, conv_node.target), False,
                                   (conv_node.target,), anchors=((conv_node.target, conv_node.target),),
                                   removed=(node.target,)))
        return found

    def rewrite(self, gm: fx.GraphModule, match: Match) -> None:
        nodes = nodes_by_name(gm)
        pool_node, conv_node = nodes[match.nodes[0]], nodes[match.nodes[1]]
        pool, conv = gm.get_submodule(pool_node.target), gm.get_submodule(conv_node.target)
        replace_module(gm, conv_node.target, widen_pointwise(conv, _pair(pool.kernel_size), _pair(pool.padding)))
        bypass(pool_node)


@torch.no_grad()
def widen_pointwise(conv: nn.Conv2d, kernel: tuple[int, int], padding: tuple[int, int]) -> nn.Conv2d:
    """A ``kernel``-sized convolution that starts as ``conv`` (1x1) at its centre, zeros around."""
    wide = nn.Conv2d(conv.in_channels, conv.out_channels, kernel, 1, padding, bias=conv.bias is not None)
    wide.weight.zero_()
    wide.weight[:, :, kernel[0] // 2, kernel[1] // 2] = conv.weight[:, :, 0, 0]
    if conv.bias is not None:
        wide.bias.copy_(conv.bias)
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
                tail = [node.target for node in neighbour[neighbour.index(grown):]
                        if isinstance(module_of(gm, node), (nn.Conv2d, nn.BatchNorm2d))]
                together = (neighbour[-1].target, chain[-1].target) if index else (chain[-1].target, neighbour[-1].target)
                found.append(Match(self.kind, tuple(n.name for n in chain) + (grown.name, cat.name),
                                   tuple(n.target for n in chain) + (grown.target,), False, tuple(tail),
                                   anchors=((neighbour[-1].target, together),), removed=tuple(n.target for n in chain)))
        return found

    def rewrite(self, gm: fx.GraphModule, match: Match) -> None:
        nodes = nodes_by_name(gm)
        chain, cat = [nodes[name] for name in match.nodes[:-2]], nodes[match.nodes[-1]]
        inputs = list(cat.args[0])
        index = inputs.index(chain[-1])
        width = gm.get_submodule(_growable_conv(gm, chain).target).out_channels
        for target in match.regenerated:
            layer = gm.get_submodule(target)
            grow = grow_conv if isinstance(layer, nn.Conv2d) else grow_batchnorm
            replace_module(gm, target, grow(layer, width, first=index == 0))
        cat.args = (inputs[:index] + inputs[index + 1:],) + tuple(cat.args[1:])


def _branches(gm: fx.GraphModule, cat: fx.Node):
    """The chains of single-input layers from one fork to each input of a channel concat, else None."""
    if cat.op != "call_function" or cat.target is not torch.cat or not isinstance(cat.args[0], (list, tuple)):
        return None
    dim = cat.args[1] if len(cat.args) > 1 else cat.kwargs.get("dim", 0)
    if dim != 1 or len(cat.args[0]) < 2:
        return None
    chains, sources = [], set()
    for node in cat.args[0]:
        chain = []
        while isinstance(node, fx.Node) and node.op == "call_module" and len(node.users) == 1 \
                and len(node.args) == 1 and not node.kwargs and isinstance(node.args[0], fx.Node):
            chain.insert(0, node)
            node = node.args[0]
        if not chain:
            return None
        chains.append(chain)
        sources.add(node)
    return chains if len(sources) == 1 else None


def _growable_conv(gm: fx.GraphModule, chain: list[fx.Node]):
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
    grown = nn.Conv2d(conv.in_channels, conv.out_channels + extra, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, 1, conv.bias is not None, conv.padding_mode)
    kept = slice(extra, None) if first else slice(0, conv.out_channels)
    grown.weight[kept] = conv.weight
    if conv.bias is not None:
        grown.bias[kept] = conv.bias
    return grown


@torch.no_grad()
def grow_batchnorm(norm: nn.BatchNorm2d, extra: int, first: bool) -> nn.BatchNorm2d:
    """``norm`` with ``extra`` more channels that start as the identity."""
    grown = nn.BatchNorm2d(norm.num_features + extra, norm.eps, norm.momentum, norm.affine).eval()
    grown.running_var.fill_(1 - norm.eps)
    kept = slice(extra, None) if first else slice(0, norm.num_features)
    grown.running_mean[kept], grown.running_var[kept] = norm.running_mean, norm.running_var
    if norm.affine:
        grown.weight[kept], grown.bias[kept] = norm.weight, norm.bias
    return grown
