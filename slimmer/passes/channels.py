"""Channel reduction (DeepRebirth's halved Inception reducers, generalised), approximate: the channels
between two convolutions are cut to a share of them, and the layers around them learn the rest back.

A match is a convolution P (one group) whose output reaches exactly one convolution C (one group) through
layers that keep each channel to itself: BatchNorms, activations, pools, dropouts and at most one
depthwise convolution. That is GoogLeNet's 1x1 reducer before its 3x3 or 5x5, ResNet's bottleneck
(1x1 -> 3x3 and 3x3 -> 1x1) and MobileNetV2's expansion (1x1 -> depthwise 3x3 -> 1x1). Nothing else may
read those channels (a residual add or a concat that taps them would see fewer), and no layer on the way
may be called twice (shared weights): then the channels are the business of P and C alone.

The channels kept are the most salient ones by a weight-only measure: the product, along the path, of each
channel's weight norm in P (its filter and bias), in the depthwise layer, the scale of each BatchNorm, and
the norm of the weights C reads it with. P's outputs, every per-channel layer on the way and C's inputs are
sliced to them; then P..C learn to reproduce C's output in the model as it was before this step (the merges
and, with them, what they learned are kept), layer-wise and, if needed, end to end, like a decomposition.

Each chain is offered at a half and at three quarters of its channels, rounded up to the 8-channel tiles of
XNNPACK's kernels. An offer is worth the measured time of the convolutions, scaled to their fewer
multiply-accumulates by the profile's own fit (a fixed cost per layer plus a cost per multiply-accumulate,
``LayerCosts.fit``), plus the measured time of any per-channel layer on the way, in proportion.
"""

from __future__ import annotations

import operator
from typing import Optional

import torch
from torch import fx, nn

from rebirth.slimmer.graph import bias_of, conv2d_like, module_of, module_path, only_user, replace_module, running_stats
from rebirth.slimmer.passes.base import Compression, LayerCosts, Match, nodes_by_name
from rebirth.slimmer.passes.lowrank import tile
from rebirth.slimmer.passes.streamline import ACTIVATIONS

KEEP = (0.5, 0.75)
"""The shares of a chain's channels it is offered at."""
PER_CHANNEL = ACTIVATIONS + (nn.BatchNorm2d, nn.Dropout, nn.Identity, nn.MaxPool2d, nn.AvgPool2d,
                             nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh,
                             nn.Hardswish, nn.Hardsigmoid)
"""Layers that compute each channel from that channel alone (and have no weights across channels)."""
F = nn.functional
PER_CHANNEL_FUNCTIONS = (torch.relu, torch.relu_, torch.sigmoid, torch.tanh, F.relu, F.relu6, F.leaky_relu,
                         F.hardtanh, F.silu, F.gelu, F.hardswish, F.hardsigmoid, F.sigmoid, F.tanh, F.max_pool2d,
                         F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.dropout)
PER_CHANNEL_METHODS = ("relu", "relu_", "sigmoid", "tanh", "contiguous")
"""The same as functions (``torch.relu(x)``) and tensor methods (``x.relu()``)."""


def plain_conv(module: Optional[nn.Module]) -> bool:
    """A one-group 2-D convolution (a producer or a consumer of reduced channels)."""
    return type(module) is nn.Conv2d and module.groups == 1


def depthwise(module: Optional[nn.Module]) -> bool:
    """A depthwise convolution with one filter per channel (it can be sliced with its channels)."""
    return type(module) is nn.Conv2d and module.groups == module.in_channels == module.out_channels > 1


class ReduceChannels(Compression):
    kind = "reduce_channels"
    verb = "channel-reduced"
    gerund = "channel-reducing"

    def matches(self, gm: fx.GraphModule) -> list[Match]:
        calls: dict[str, int] = {}
        for node in gm.graph.nodes:
            if node.op == "call_module":
                calls[str(node.target)] = calls.get(str(node.target), 0) + 1
        found = []
        for node in gm.graph.nodes:
            producer = module_of(gm, node)
            if not plain_conv(producer) or calls[module_path(node)] != 1:
                continue
            assert isinstance(producer, nn.Conv2d)
            for head, width in _segments(node, producer.out_channels):
                chain = _chain(gm, head[-1], calls)
                if chain is None:
                    continue
                paths = tuple(module_path(n) for n in [node] + chain if n.op == "call_module")
                learned = tuple(path for path in paths if _has_weights(gm.get_submodule(path)))
                for share in KEEP:
                    keep = tile(share * width)
                    if keep >= width:
                        continue
                    found.append(Match(self.kind, tuple(n.name for n in head + chain), paths, False, learned,
                                       anchors=((paths[-1], paths[-1]),), ranks=(keep,),
                                       detail=f"{keep} of {width} channels into {paths[-1]}"))
        return found

    def estimate(self, gm: fx.GraphModule, match: Match, costs: LayerCosts) -> tuple[float, float]:
        """The convolutions' measured time less what the profile's fit predicts at their fewer MACs; the
        per-channel layers' measured time in proportion to the channels cut."""
        nodes = nodes_by_name(gm)
        producer = gm.get_submodule(match.layers[0])
        assert isinstance(producer, nn.Conv2d)
        _, width = _segment_of(nodes, match, producer.out_channels)
        cut = width - match.ranks[0]
        saved = 0.0
        for index, path in enumerate(match.layers):
            module = gm.get_submodule(path)
            kept = 1 - cut / producer.out_channels if index == 0 else 1 - cut / width
            if isinstance(module, nn.Conv2d):
                scaled, work = costs.scaled(path), costs.macs.get(path, 0)
                before = costs.predict(work)
                saved += scaled * (1 - costs.predict(round(work * kept)) / before) if before > 0 \
                    else scaled * (1 - kept)
            else:
                saved += costs.measured((path,)) * (1 - kept)
        return saved, 0.0

    def rewrite(self, gm: fx.GraphModule, match: Match) -> None:
        nodes = nodes_by_name(gm)
        paths = list(match.layers)
        modules = [gm.get_submodule(path) for path in paths]
        producer, consumer = modules[0], modules[-1]
        assert isinstance(producer, nn.Conv2d) and isinstance(consumer, nn.Conv2d)
        offset, width = _segment_of(nodes, match, producer.out_channels)
        rows = slice(offset, offset + width)
        weights = saliency(producer.weight[rows], None if producer.bias is None else producer.bias[rows],
                           modules[1:-1], consumer)
        keep = torch.sort(torch.topk(weights, match.ranks[0]).indices).values
        everything = torch.arange(producer.out_channels)
        replace_module(gm, paths[0], slice_outputs(producer, torch.cat([everything[:offset], offset + keep,
                                                                           everything[offset + width:]])))
        for path, module in zip(paths[1:-1], modules[1:-1]):
            replace_module(gm, path, slice_outputs(module, keep))
        replace_module(gm, paths[-1], slice_inputs(consumer, keep))
        split = nodes[match.nodes[1]]
        if _is_split(split):
            sizes = list(split.args[1])  # type: ignore[arg-type]  # _is_split checked it is a list
            sizes[nodes[match.nodes[2]].args[1]] = match.ranks[0]  # type: ignore[index]
            split.args = (split.args[0], sizes) + tuple(split.args[2:])

    def group_anchors(self, chosen: list[Match]) -> tuple[tuple[str, str | tuple[str, ...]], ...]:
        """What the chains chosen together must reproduce: each consumer's output, unless another chain
        reduces that consumer's own outputs (ResNet's 3x3 is both); then that chain's consumers'."""
        by_producer: dict[str, list[Match]] = {}
        for match in chosen:
            by_producer.setdefault(match.layers[0], []).append(match)
        found: list[tuple[str, str | tuple[str, ...]]] = []
        for match in chosen:
            waiting, seen = [match.layers[-1]], set()
            while waiting:
                consumer = waiting.pop()
                if consumer in seen:
                    continue
                seen.add(consumer)
                if consumer in by_producer:
                    waiting.extend(other.layers[-1] for other in by_producer[consumer])
                else:
                    found.append((consumer, consumer))
        return tuple(dict.fromkeys(found))


def _is_split(node: fx.Node) -> bool:
    """A ``torch.split(x, [sizes], dim=1)`` (what ``MergeParallelConvs`` makes of parallel convolutions)."""
    dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
    return node.op == "call_function" and node.target is torch.split and len(node.args) >= 2 \
        and isinstance(node.args[1], (list, tuple)) and isinstance(dim, int) and dim == 1


def _segments(node: fx.Node, width: int) -> list[tuple[list[fx.Node], int]]:
    """The ways the producer's channels go on: ``([producer], width)`` when one node reads them all, or one
    ``([producer, split, getitem], segment width)`` per part of a channel split read by one node alone."""
    user = only_user(node)
    if user is None:
        return []
    if not _is_split(user):
        return [([node], width)]
    sizes = list(user.args[1])  # type: ignore[arg-type]
    parts = {part: part.args[1] for part in user.users
             if part.op == "call_function" and part.target is operator.getitem and len(part.args) == 2}
    if len(parts) != len(user.users):  # the split's parts also go elsewhere whole (a list, a loop): not ours
        return []
    indices = list(parts.values())
    return [([node, user, part], int(sizes[index])) for part, index in parts.items()
            if isinstance(index, int) and 0 <= index < len(sizes) and indices.count(index) == 1]


def _segment_of(nodes: dict[str, fx.Node], match: Match, width: int) -> tuple[int, int]:
    """``(first channel, channels)`` of the producer's outputs the match reduces."""
    split = nodes[match.nodes[1]]
    if not _is_split(split):
        return 0, width
    sizes = list(split.args[1])  # type: ignore[arg-type]
    index = nodes[match.nodes[2]].args[1]
    assert isinstance(index, int)
    return sum(sizes[:index]), sizes[index]


def _chain(gm: fx.GraphModule, start: fx.Node, calls: dict[str, int]) -> Optional[list[fx.Node]]:
    """``[per-channel layers..., consumer]`` reading ``start``'s output, else None."""
    chain: list[fx.Node] = []
    depthwise_seen = False
    current = start
    while True:
        user = only_user(current)
        if user is None or not user.args or user.args[0] is not current \
                or any(isinstance(arg, fx.Node) for arg in list(user.args[1:]) + list(user.kwargs.values())):
            return None
        chain.append(user)
        if user.op != "call_module":
            if not _per_channel_call(user):
                return None
            current = user
            continue
        module = module_of(gm, user)
        assert module is not None
        if calls[module_path(user)] != 1 and _has_weights(module):  # shared weights: slicing them changes both
            return None
        if plain_conv(module) and len(user.args) == 1 and not user.kwargs:
            return chain
        if depthwise(module) and not depthwise_seen:
            depthwise_seen = True
        elif not isinstance(module, PER_CHANNEL) or (isinstance(module, nn.BatchNorm2d)
                                                      and module.running_mean is None):
            return None
        current = user


def _per_channel_call(node: fx.Node) -> bool:
    """A function or tensor method that computes each channel from that channel alone."""
    if node.op == "call_function":
        return any(node.target is function for function in PER_CHANNEL_FUNCTIONS)
    return node.op == "call_method" and node.target in PER_CHANNEL_METHODS


def _has_weights(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def saliency(filters: torch.Tensor, bias: Optional[torch.Tensor], middle: list[nn.Module],
             consumer: nn.Conv2d) -> torch.Tensor:
    """Each channel's weight along the path: the producer's ``filters`` (and ``bias``) for those channels, the
    ``middle`` per-channel layers, the ``consumer``. The product of its norms, a proxy for how much of the
    consumer's output the channel carries (fine-tuning recovers the rest)."""
    with torch.no_grad():
        rows = filters.flatten(1)
        if bias is not None:
            rows = torch.cat([rows, bias[:, None]], 1)
        value = rows.norm(dim=1) * consumer.weight.transpose(0, 1).flatten(1).norm(dim=1)
        for module in middle:
            if isinstance(module, nn.Conv2d):
                value = value * module.weight.flatten(1).norm(dim=1)
            elif isinstance(module, nn.BatchNorm2d):
                _, var = running_stats(module)
                scale = (var + module.eps).rsqrt()
                value = value * (scale * module.weight.abs() if module.affine else scale)
    return value


@torch.no_grad()
def slice_outputs(module: nn.Module, keep: torch.Tensor) -> nn.Module:
    """``module`` computing only the channels ``keep`` (a producer, a depthwise layer, a BatchNorm), else
    ``module`` itself (it has no per-channel state)."""
    if isinstance(module, nn.BatchNorm2d):
        sliced = nn.BatchNorm2d(len(keep), module.eps, module.momentum, module.affine).eval()
        mean, var = running_stats(module)
        new_mean, new_var = running_stats(sliced)
        new_mean.copy_(mean[keep])
        new_var.copy_(var[keep])
        if module.affine:
            sliced.weight.copy_(module.weight[keep])
            sliced.bias.copy_(module.bias[keep])
        return sliced
    if not isinstance(module, nn.Conv2d):
        return module
    groups = len(keep) if module.groups > 1 else 1
    sliced_conv = conv2d_like(module, len(keep), groups, module.bias is not None,
                              in_channels=module.in_channels if groups == 1 else len(keep))
    sliced_conv.weight.copy_(module.weight[keep])
    if module.bias is not None:
        bias_of(sliced_conv).copy_(module.bias[keep])
    return sliced_conv


@torch.no_grad()
def slice_inputs(conv: nn.Conv2d, keep: torch.Tensor) -> nn.Conv2d:
    """``conv`` reading only the input channels ``keep``."""
    sliced = conv2d_like(conv, conv.out_channels, 1, conv.bias is not None, in_channels=len(keep))
    sliced.weight.copy_(conv.weight[:, keep])
    if conv.bias is not None:
        bias_of(sliced).copy_(conv.bias)
    return sliced

