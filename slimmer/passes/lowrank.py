"""Low-rank decomposition (Kim et al., ICLR 2016, which DeepRebirth applied after its merges), approximate:
one layer becomes a chain of thinner ones computing an approximation of the same linear map.

- A k x k convolution (k > 1, one group): Tucker-2 over its output and input channels. A 1x1 convolution
  (C_in -> R_in), the k x k core (R_in -> R_out, with the original stride, padding and dilation) and a 1x1
  convolution (R_out -> C_out, with the original bias).
- A 1x1 convolution or a linear layer: truncated SVD, two layers through R channels.

The chain is initialised from the decomposition (HOSVD for Tucker-2), so at full rank it computes the
layer exactly; at the ranks chosen it then learns to reproduce the layer it replaces (in the model as
it is at that step, so the merges made before it are kept), like any regenerated layer.

Ranks are chosen for latency, not for parameter count: each layer is offered at a few ranks (those
that keep a quarter or a half of its multiply-accumulates, rounded up to the 8-channel tiles that
XNNPACK's kernels work in), and each offer is worth the layer's measured time minus the time the profile
predicts for the chain. That prediction is a fit over the profile's own convolution and linear layers
(a fixed cost per layer plus a cost per multiply-accumulate), so where one layer's fixed cost is most
of its time, turning it into three layers is not proposed. The planner tries the most worthwhile offer
first and, when fine-tuning cannot keep it within the accuracy budget, the next.
"""

from __future__ import annotations

import math
from typing import Optional, TypeVar

import torch
from torch import fx, nn

from rebirth.slimmer.graph import bias_of, module_of, module_path, replace_module
from rebirth.slimmer.passes.base import Compression, LayerCosts, Match, ShapedPass

TARGETS = (0.25, 0.5)
"""The shares of a layer's multiply-accumulates a decomposition is offered at."""
CHANNEL_TILE = 8
"""Ranks are multiples of this (XNNPACK's convolution kernels process channels in tiles of 8 on x86 and Arm)."""
MAX_SHARE = 0.6
"""An offer that keeps more than this share of the layer's multiply-accumulates (after rounding) is dropped."""


def tile(value: float) -> int:
    """``value`` rounded up to a whole number of channel tiles (at least one)."""
    return max(CHANNEL_TILE, CHANNEL_TILE * math.ceil(value / CHANNEL_TILE))


def decomposable(module: Optional[nn.Module]) -> bool:
    """A layer this pass can decompose: a plain linear layer or a one-group 2-D convolution."""
    return type(module) is nn.Linear or (type(module) is nn.Conv2d and module.groups == 1)


def chain_macs(module: nn.Module, ranks: tuple[int, ...], in_shape, out_shape) -> int:
    """Multiply-accumulates of ``module`` decomposed at ``ranks``."""
    return sum(part_macs(module, ranks, in_shape, out_shape))


def channels(module: nn.Module) -> tuple[int, int]:
    """``(inputs, outputs)`` of a linear layer or a convolution."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    assert isinstance(module, nn.Conv2d), f"a {type(module).__name__} does not decompose"
    return module.in_channels, module.out_channels


def pointwise(module: nn.Module) -> bool:
    """A linear layer or a 1x1 convolution: decomposed by SVD (else Tucker-2)."""
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1))


def offers(module: nn.Module, in_shape, out_shape, macs: int) -> list[tuple[int, ...]]:
    """The ranks ``module`` is offered at: ``(R,)`` for SVD, ``(R_out, R_in)`` for Tucker-2."""
    found: list[tuple[int, ...]] = []
    c_in, c_out = channels(module)
    if pointwise(module):
        for share in TARGETS:
            rank = tile(share * c_in * c_out / (c_in + c_out))
            if rank < min(c_in, c_out):
                found.append((rank,))
    else:
        for share in TARGETS:
            low, high = 0.0, 1.0  # the channel fraction whose chain keeps ``share`` of the work, by bisection
            for _ in range(30):
                middle = (low + high) / 2
                ranks = (max(1, round(middle * c_out)), max(1, round(middle * c_in)))
                low, high = (middle, high) if chain_macs(module, ranks, in_shape, out_shape) < share * macs \
                    else (low, middle)
            ranks = (tile(low * c_out), tile(low * c_in))
            if ranks[0] < c_out and ranks[1] < c_in:
                found.append(ranks)
    return [ranks for ranks in dict.fromkeys(found)
            if chain_macs(module, ranks, in_shape, out_shape) <= MAX_SHARE * macs]


class DecomposeLowRank(Compression, ShapedPass):
    kind = "low_rank"
    verb = "decomposed"
    gerund = "decomposing"

    def matches(self, gm: fx.GraphModule) -> list[Match]:
        known = self.shapes(gm)
        self.parts: dict[tuple[str, tuple[int, ...]], list[int]] = {}  # what ``estimate`` needs, without shapes again
        found = []
        for node in gm.graph.nodes:
            module = module_of(gm, node)
            if not decomposable(module) or not node.args or not isinstance(node.args[0], fx.Node):
                continue
            assert module is not None
            in_shape, out_shape = known.get(node.args[0].name), known.get(node.name)
            if in_shape is None or out_shape is None:
                continue
            macs = full_macs(module, out_shape)
            path = module_path(node)
            for ranks in offers(module, in_shape, out_shape, macs):
                parts = part_macs(module, ranks, in_shape, out_shape)
                self.parts[(node.name, ranks)] = parts
                found.append(Match(self.kind, (node.name,), (path,), False, (path,), anchors=((path, path),),
                                   detail=describe(module, ranks, sum(parts) / macs), ranks=ranks))
        return found

    def estimate(self, gm: fx.GraphModule, match: Match, costs: LayerCosts) -> tuple[float, float]:
        """The layer's measured time saved; the chain's time, as the profile's layers predict it, added."""
        parts = self.parts[(match.nodes[0], match.ranks)]
        return costs.scaled(match.layers[0]), sum(costs.predict(part) for part in parts)

    def rewrite(self, gm: fx.GraphModule, match: Match) -> None:
        path = match.layers[0]
        replace_module(gm, path, decompose(gm.get_submodule(path), match.ranks))


def full_macs(module: nn.Module, out_shape) -> int:
    """The undecomposed layer's multiply-accumulates."""
    if isinstance(module, nn.Linear):
        return math.prod(out_shape) * module.in_features
    assert isinstance(module, nn.Conv2d)
    kernel = module.kernel_size[0] * module.kernel_size[1]
    return math.prod(out_shape) * kernel * module.in_channels // module.groups


def part_macs(module: nn.Module, ranks: tuple[int, ...], in_shape, out_shape) -> list[int]:
    """Multiply-accumulates of each layer of the chain, in order."""
    if isinstance(module, nn.Linear):
        positions = math.prod(out_shape[:-1])
        return [positions * ranks[0] * module.in_features, positions * ranks[0] * module.out_features]
    assert isinstance(module, nn.Conv2d)
    out_positions = math.prod(out_shape[:1] + out_shape[2:])
    if len(ranks) == 1:
        return [out_positions * ranks[0] * module.in_channels, out_positions * ranks[0] * module.out_channels]
    r_out, r_in = ranks
    kernel = module.kernel_size[0] * module.kernel_size[1]
    in_positions = math.prod(in_shape[:1] + in_shape[2:])
    return [in_positions * module.in_channels * r_in, out_positions * r_in * r_out * kernel,
            out_positions * r_out * module.out_channels]


def describe(module: nn.Module, ranks: tuple[int, ...], share: float) -> str:
    """What a decomposition is, for a reader: ``Tucker-2 ranks 24x16 of 64x48 (43% of the MACs)``."""
    c_in, c_out = channels(module)
    if len(ranks) == 1:
        return f"SVD rank {ranks[0]} of {min(c_in, c_out)} ({100 * share:.0f}% of the MACs)"
    return (f"Tucker-2 ranks {ranks[0]}x{ranks[1]} of {c_out}x{c_in} "
            f"({100 * share:.0f}% of the MACs)")


@torch.no_grad()
def decompose(module: nn.Module, ranks: tuple[int, ...]) -> nn.Sequential:
    """``module`` (a linear layer or a one-group convolution) as a chain of thinner layers at ``ranks``:
    exact (up to float rounding) where the ranks are full, the best approximation of its rank otherwise
    (truncated SVD; Tucker-2 by HOSVD)."""
    if isinstance(module, nn.Linear):
        first, second = _svd_factors(module.weight, ranks[0])
        return nn.Sequential(_linear(first, None), _linear(second, module.bias))
    assert isinstance(module, nn.Conv2d) and module.groups == 1, "only one-group convolutions decompose"
    weight = module.weight
    sizes = dict(stride=module.stride, padding=module.padding, dilation=module.dilation,
                 padding_mode=module.padding_mode)
    if len(ranks) == 1:
        first, second = _svd_factors(weight[:, :, 0, 0], ranks[0])
        return nn.Sequential(_conv(first[:, :, None, None], None, **sizes),
                             _conv(second[:, :, None, None], module.bias))
    r_out, r_in = ranks
    out_basis = _leading(weight.flatten(1), r_out)  # (C_out, R_out)
    in_basis = _leading(weight.transpose(0, 1).flatten(1), r_in)  # (C_in, R_in)
    core = torch.einsum("oihw,or,is->rshw", weight, out_basis, in_basis)
    return nn.Sequential(_conv(in_basis.T[:, :, None, None].contiguous(), None),
                         _conv(core.contiguous(), None, **sizes),
                         _conv(out_basis[:, :, None, None].contiguous(), module.bias))


def _leading(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    """The ``rank`` leading left singular vectors of ``matrix``, as columns."""
    left, _, _ = torch.linalg.svd(matrix.double(), full_matrices=False)
    return left[:, :rank].to(matrix.dtype)


def _svd_factors(matrix: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(first, second)`` with ``second @ first`` the best rank-``rank`` approximation of ``matrix``
    (the singular values split evenly between the two)."""
    left, values, right = torch.linalg.svd(matrix.double(), full_matrices=False)
    root = values[:rank].sqrt()
    return (root[:, None] * right[:rank]).to(matrix.dtype), (left[:, :rank] * root).to(matrix.dtype)


def _linear(weight: torch.Tensor, bias: Optional[torch.Tensor]) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    return _filled(layer, weight, bias)


def _conv(weight: torch.Tensor, bias: Optional[torch.Tensor], **sizes) -> nn.Conv2d:
    kernel = (weight.shape[2], weight.shape[3])
    return _filled(nn.Conv2d(weight.shape[1], weight.shape[0], kernel, bias=bias is not None, **sizes), weight, bias)


LayerT = TypeVar("LayerT", nn.Linear, nn.Conv2d)


def _filled(layer: LayerT, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> LayerT:
    layer.weight.copy_(weight)
    if bias is not None:
        bias_of(layer).copy_(bias)
    return layer
