"""Streamline slimming (DeepRebirth, vertical): non-tensor layers merged into the convolution
before them. Approximate: the regenerated convolution is learned again afterwards.

- ``MergePoolIntoConv``: ``conv -> [activation] -> pool(stride s)`` becomes ``conv(stride x s) ->
  [activation]``; the padding is chosen so that the output keeps the pooled shape, and a match
  whose shape cannot be kept is rejected.
- ``RemoveLRN``: local response normalization removed; the convolution after it is regenerated.
"""

from __future__ import annotations

import copy
from typing import Optional

from torch import fx, nn

from rebirth.slimmer.graph import bypass, input_node, module_of, module_path, only_user, replace_module, submodule
from rebirth.slimmer.passes.base import LayerCosts, Match, RemoveLayer, ShapedPass, nodes_by_name

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh)
POOLS = (nn.MaxPool2d, nn.AvgPool2d)


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


class MergePoolIntoConv(ShapedPass):
    kind = "merge_pool_into_conv"
    exact = False

    def matches(self, gm: fx.GraphModule) -> list[Match]:
        known = self.shapes(gm)
        found = []
        for node in gm.graph.nodes:
            chain = self._chain(gm, node)
            if chain is None:
                continue
            conv_node, pool_node = chain[0], chain[-1]
            padding = self._padding(submodule(gm, conv_node, nn.Conv2d), gm.get_submodule(module_path(pool_node)),
                                    known[input_node(conv_node).name], known[pool_node.name])
            if padding is not None:
                names, layers = tuple(n.name for n in chain), tuple(module_path(n) for n in chain)
                found.append(Match(self.kind, names, layers, False, (layers[0],),
                                   anchors=((layers[-2], layers[-1]),), removed=(layers[-1],)))
        return found

    def _chain(self, gm: fx.GraphModule, node: fx.Node) -> Optional[list[fx.Node]]:
        """``[conv, (activation,) pool]`` starting at ``node``, each link the only user of the last."""
        conv = module_of(gm, node)
        if type(conv) is not nn.Conv2d or conv.groups != 1:
            return None
        chain, current = [node], only_user(node)
        if current is not None and isinstance(module_of(gm, current), ACTIVATIONS):
            chain.append(current)
            current = only_user(current)
        if current is None:
            return None
        pool = module_of(gm, current)
        if not isinstance(pool, POOLS) or current.args[0] is not chain[-1] or max(_pair(pool.stride)) < 2:
            return None
        return chain + [current]

    @staticmethod
    def _padding(conv: nn.Conv2d, pool: nn.Module, in_shape, out_shape) -> Optional[tuple[int, ...]]:
        """The padding that makes ``conv`` with its stride times the pool's produce ``out_shape``."""
        stride = tuple(c * p for c, p in zip(_pair(conv.stride), _pair(pool.stride)))
        answer = []
        for axis in range(2):
            size, kernel, dilation = in_shape[2 + axis], conv.kernel_size[axis], conv.dilation[axis]
            wanted = out_shape[2 + axis]
            options = [p for p in range(0, kernel * dilation + stride[axis])
                       if (size + 2 * p - dilation * (kernel - 1) - 1) // stride[axis] + 1 == wanted]
            if not options:
                return None
            original = _pair(conv.padding)[axis] if not isinstance(conv.padding, str) else 0
            answer.append(min(options, key=lambda p: abs(p - original)))
        return tuple(answer)

    def estimate(self, gm: fx.GraphModule, match: Match, costs: LayerCosts) -> tuple[float, float]:
        """The pool's time, plus the convolution work the larger stride saves."""
        stride = _pair(gm.get_submodule(match.layers[-1]).stride)
        return costs.measured(match.removed) + costs.scaled(match.layers[0]) * (1 - 1 / (stride[0] * stride[1])), 0.0

    def rewrite(self, gm: fx.GraphModule, match: Match) -> None:
        nodes = nodes_by_name(gm)
        chain = [nodes[name] for name in match.nodes]
        conv, pool = submodule(gm, chain[0], nn.Conv2d), gm.get_submodule(module_path(chain[-1]))
        known = self.shapes(gm)
        padding = self._padding(conv, pool, known[input_node(chain[0]).name], known[chain[-1].name])
        assert padding is not None, "the match found a padding"
        merged = copy.deepcopy(conv)
        merged.stride = tuple(c * p for c, p in zip(_pair(conv.stride), _pair(pool.stride)))
        merged.padding = padding
        replace_module(gm, module_path(chain[0]), merged)
        bypass(chain[-1])


class RemoveLRN(RemoveLayer):
    kind = "remove_lrn"
    exact = False

    def matches(self, gm: fx.GraphModule) -> list[Match]:
        from rebirth.slimmer.graph import _leaf_types

        found = []
        lrn_types = tuple(t for t in _leaf_types() if "ResponseNorm" in t.__name__)
        for node in gm.graph.nodes:
            if isinstance(module_of(gm, node), lrn_types):
                following = _next_conv(gm, node)
                after = (module_path(following),) if following is not None else ()
                found.append(Match(self.kind, (node.name,), (module_path(node),), False, after,
                                   anchors=tuple((t, t) for t in after), removed=(module_path(node),)))
        return found


def _next_conv(gm: fx.GraphModule, node: fx.Node) -> Optional[fx.Node]:
    """The first convolution downstream along single-user links (what learns to stand in for the LRN)."""
    current = only_user(node)
    while current is not None:
        if isinstance(module_of(gm, current), (nn.Conv2d, nn.Linear)):
            return current
        current = only_user(current)
    return None

