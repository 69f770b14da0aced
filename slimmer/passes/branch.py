"""Branch slimming (DeepRebirth, horizontal), approximate: the Inception pooling branch
(``pool k x k, stride 1 -> conv 1x1``) becomes one ``conv k x k``, initialised with the 1x1
weights at its centre and learned again afterwards.
"""

from __future__ import annotations

import torch
from torch import fx, nn

from slimmer.graph import bypass, module_of, only_user, replace_module
from slimmer.passes.base import Match, SlimPass, nodes_by_name
from slimmer.passes.streamline import POOLS, _pair


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
