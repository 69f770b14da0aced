"""Parallel convolutions that read the same input become one convolution and a split (exact).

The Inception module's 1x1 convolutions all read the block's input; as one wider convolution
they run as one kernel call. Convolutions merge when every hyper-parameter but the number of
output channels is the same.
"""

from __future__ import annotations

import operator
from collections import defaultdict

import torch
from torch import fx, nn

from rebirth.slimmer.graph import bias_of, conv2d_like, module_of, module_path, submodule
from rebirth.slimmer.passes.base import LayerCosts, Match, SlimPass, nodes_by_name

SPLIT_COST_MS = 1e-3
"""What each output of the split after a merged convolution costs, in the planner's estimate."""


def _signature(conv: nn.Conv2d) -> tuple:
    return (conv.in_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups,
            conv.padding_mode, conv.bias is not None, conv.weight.dtype)


class MergeParallelConvs(SlimPass):
    kind = "merge_parallel"
    exact = True

    def matches(self, gm: fx.GraphModule) -> list[Match]:
        groups: dict[tuple, list[fx.Node]] = defaultdict(list)
        for node in gm.graph.nodes:
            conv = module_of(gm, node)
            if type(conv) is nn.Conv2d and conv.groups == 1 and len(node.args) == 1 and not node.kwargs \
                    and isinstance(node.args[0], fx.Node):
                groups[(node.args[0], _signature(conv))].append(node)
        return [Match(self.kind, tuple(n.name for n in nodes), tuple(module_path(n) for n in nodes), True)
                for nodes in groups.values() if len(nodes) > 1]

    def estimate(self, gm: fx.GraphModule, match: Match, costs: LayerCosts) -> tuple[float, float]:
        """Nothing removed; the split's copies cost a little (measured slightly slower on XNNPACK)."""
        return 0.0, SPLIT_COST_MS * len(match.layers)

    def rewrite(self, gm: fx.GraphModule, match: Match) -> None:
        nodes = [nodes_by_name(gm)[name] for name in match.nodes]
        convs = [submodule(gm, node, nn.Conv2d) for node in nodes]
        target = _merged_name(gm, module_path(nodes[0]))
        gm.add_submodule(target, merge_convs(convs))
        with gm.graph.inserting_before(nodes[0]):
            merged = gm.graph.call_module(target, (nodes[0].args[0],))
            parts = gm.graph.call_function(torch.split, (merged, [c.out_channels for c in convs]), {"dim": 1})
            for index, node in enumerate(nodes):
                node.replace_all_uses_with(gm.graph.call_function(operator.getitem, (parts, index)))
        for node in nodes:
            gm.graph.erase_node(node)


def _merged_name(gm: fx.GraphModule, first: str) -> str:
    """``block.merged`` beside the first convolution's top-level block (``merged`` at the top)."""
    base = f"{first.split('.')[0]}.merged" if "." in first else "merged"
    candidate, index = base, 1
    while _exists(gm, candidate):
        index += 1
        candidate = f"{base}{index}"
    return candidate


def _exists(gm: fx.GraphModule, target: str) -> bool:
    try:
        gm.get_submodule(target)
        return True
    except AttributeError:
        return False


@torch.no_grad()
def merge_convs(convs: list[nn.Conv2d]) -> nn.Conv2d:
    """One convolution whose output channels are the given convolutions' outputs, in order."""
    first = convs[0]
    merged = conv2d_like(first, sum(c.out_channels for c in convs), first.groups, bias=first.bias is not None)
    merged.weight.copy_(torch.cat([c.weight for c in convs]))
    if first.bias is not None:
        bias_of(merged).copy_(torch.cat([bias_of(c) for c in convs]))
    return merged
