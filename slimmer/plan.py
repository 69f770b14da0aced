"""The plan: candidate merges ranked by what the profile says they save.

Every pass proposes its matches on the current graph. Each candidate's saving is estimated from
the measured time of the layers involved (the profile's per-layer p50s): the non-tensor layers it
removes, plus the convolution time a larger stride saves, minus the time a regenerated layer adds
(its measured time scaled by the extra multiply-accumulates). The best candidate is applied, and
the ranking is made again on the new graph, until nothing left saves time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from torch import fx, nn

from slimmer.cost import layer_macs, output_bytes
from slimmer.passes import (EXACT_PASSES, MergePoolIntoConv, RemoveLRN, RemoveThinBranch, ReplacePoolBranch,
                             SlimPass)
from slimmer.passes.base import Match


@dataclass(frozen=True)
class Candidate:
    """One merge the planner could make, and what the profile says it is worth."""

    match: Match
    saves_ms: float
    costs_ms: float
    memory_bytes: int

    @property
    def gain_ms(self) -> float:
        return self.saves_ms - self.costs_ms

    @property
    def worthwhile(self) -> bool:
        """Saves time; an exact merge that the profile says costs nothing is made too (fewer layers, same outputs)."""
        return self.gain_ms > 0 or (self.match.exact and self.gain_ms == 0)


def layer_times(ops: Iterable) -> dict[str, float]:
    """p50 milliseconds per source layer, summed over its ops (a Profile's ``ops``)."""
    times: dict[str, float] = defaultdict(float)
    for op in ops:
        if op.layer:
            times[op.layer] += op.p50_ms
    return dict(times)


def make_passes(example_inputs, exact_only: bool = False) -> list[SlimPass]:
    passes: list[SlimPass] = [cls() for cls in EXACT_PASSES]
    if not exact_only:
        passes += [RemoveLRN(), MergePoolIntoConv(example_inputs), ReplacePoolBranch(),
                   RemoveThinBranch(example_inputs)]
    return passes


def candidates(gm: fx.GraphModule, passes: Sequence[SlimPass], times: dict[str, float], example_inputs,
               original_macs: Optional[dict[str, int]] = None) -> list[tuple[Candidate, SlimPass]]:
    """Every match of every pass on ``gm`` with its estimated worth, best first."""
    macs = layer_macs(gm, example_inputs)
    original_macs = original_macs or macs
    sizes = output_bytes(gm, example_inputs)
    found = []
    for slim_pass in passes:
        for match in slim_pass.matches(gm):
            saves, costs = estimate(gm, match, times, macs, original_macs)
            memory = sum(sizes.get(layer, 0) for layer in match.removed)
            found.append((Candidate(match, saves, costs, memory), slim_pass))
    return sorted(found, key=lambda pair: (-pair[0].gain_ms, -pair[0].memory_bytes, pair[0].match.layers))


def estimate(gm: fx.GraphModule, match: Match, times: dict[str, float], macs: dict[str, int],
             original_macs: dict[str, int]) -> tuple[float, float]:
    """(ms saved, ms added) for one match, from measured layer times."""
    saves = sum(times.get(layer, 0.0) for layer in match.removed)
    costs = 0.0
    if match.kind == "merge_pool_into_conv":
        pool = gm.get_submodule(match.layers[-1])
        stride = pool.stride if isinstance(pool.stride, tuple) else (pool.stride, pool.stride)
        saves += _scaled(times, match.layers[0], macs, original_macs) * (1 - 1 / (stride[0] * stride[1]))
    elif match.kind == "replace_pool_branch":
        pool = gm.get_submodule(match.layers[0])
        kernel = pool.kernel_size if isinstance(pool.kernel_size, tuple) else (pool.kernel_size,) * 2
        costs += _scaled(times, match.layers[1], macs, original_macs) * (kernel[0] * kernel[1] - 1)
    elif match.kind == "remove_thin_branch":
        grown = gm.get_submodule(match.layers[-1])
        removed = [gm.get_submodule(layer) for layer in match.removed]
        width = [layer for layer in removed if isinstance(layer, nn.Conv2d)][-1].out_channels
        costs += _scaled(times, match.layers[-1], macs, original_macs) * width / grown.out_channels
    elif match.kind == "merge_parallel":
        costs += 1e-3 * len(match.layers)  # a split's copies; measured slightly slower on XNNPACK
    return saves, costs


def _scaled(times: dict[str, float], layer: str, macs: dict[str, int], original_macs: dict[str, int]) -> float:
    """The layer's measured time, scaled to its current size (an earlier merge may have shrunk it)."""
    measured = times.get(layer, 0.0)
    before, now = original_macs.get(layer), macs.get(layer)
    return measured * now / before if before and now else measured
