"""The plan: candidate merges ranked by what the profile says they save.

Every pass proposes its matches on the current graph. Each candidate's saving is estimated from
the measured time of the layers involved (the profile's per-layer p50s): the non-tensor layers it
removes, plus the convolution time a larger stride saves, minus the time a regenerated layer adds
(its measured time scaled by the extra multiply-accumulates). The best candidate is applied, and
the ranking is made again on the new graph, until nothing left saves time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Optional

from torch import fx

from rebirth.contract.slim import PlannedMerge
from rebirth.slimmer.cost import layer_macs, output_bytes
from rebirth.slimmer.passes import APPROXIMATE_PASSES, EXACT_PASSES, LayerCosts, Match, SlimPass


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

    def record(self) -> PlannedMerge:
        match = self.match
        return PlannedMerge(match.kind, match.layers, match.exact, self.saves_ms, self.costs_ms, self.memory_bytes,
                            self.worthwhile, match.detail)


def layer_times(ops: Iterable) -> dict[str, float]:
    """p50 milliseconds per source layer, summed over its ops (a Profile's ``ops``)."""
    times: dict[str, float] = defaultdict(float)
    for op in ops:
        if op.layer:
            times[op.layer] += op.p50_ms
    return dict(times)


OUTLIER = 2.0
"""How far from its kind's estimate a layer's measured time may be and still be read as that estimate plus noise."""


def steady_times(gm: fx.GraphModule, example_inputs, times: dict[str, float]) -> dict[str, float]:
    """The profile's layer times as the slimmer ranks and weighs them: each layer's time as the layers of its kind
    take it, so that a decision does not follow one layer's timing noise (a busy moment, a cache miss) between two
    profiles of the same model.

    A conv or linear layer's kind is its shape of work (kernel, stride, groups: a 1x1, a 3x3, a depthwise 3x3, a
    linear); its time is the profile's fit over every such layer (``LayerCosts.fit``: a fixed cost plus a cost per
    multiply-accumulate), scaled by how much slower or faster than the fit that kind ran, all of its layers
    together. Any other layer's kind is its module type, its time that kind's measured time per output byte.
    A layer measured at over ``OUTLIER`` times its kind's estimate, or under its inverse, keeps its measured time:
    that is the layer, not noise (a layer its delegate does not run, say). So does a kind of one layer, or a layer
    without a module or a size."""
    macs, sizes = layer_macs(gm, example_inputs), output_bytes(gm, example_inputs)
    modules = dict(gm.named_modules())
    costs = LayerCosts(times, macs, macs)
    kinds: dict[tuple, list[tuple[str, float]]] = defaultdict(list)
    for layer in times:
        module = modules.get(layer)
        if module is None:
            continue
        if macs.get(layer):
            kinds[("work", *_work_kind(module))].append((layer, costs.predict(macs[layer])))
        elif sizes.get(layer):
            kinds[("bytes", type(module).__name__)].append((layer, float(sizes[layer])))
    steady = dict(times)
    for members in kinds.values():
        typical = members
        for _ in range(2):  # the kind's rate, then again without the layers far from it
            rate = _rate(typical, times)
            if rate is None:
                break
            typical = [(layer, work) for layer, work in members if _near(times[layer], rate * work)]
        if rate is None or len(typical) < 2:
            continue
        steady.update({layer: rate * work for layer, work in typical})
    return steady


def _rate(members: list[tuple[str, float]], times: dict[str, float]) -> Optional[float]:
    """Measured time per unit of modelled work over ``members``; None for fewer than two or no work."""
    modelled = sum(work for _, work in members)
    if len(members) < 2 or modelled <= 0:
        return None
    return sum(times[layer] for layer, _ in members) / modelled


def _near(measured: float, estimate: float) -> bool:
    return estimate > 0 and 1 / OUTLIER <= measured / estimate <= OUTLIER


def _work_kind(module) -> tuple:
    from torch import nn

    if isinstance(module, nn.Conv2d):
        depthwise = module.groups > 1 and module.groups == module.in_channels
        return ("conv", module.kernel_size, module.stride, "depthwise" if depthwise else module.groups > 1)
    return (type(module).__name__,)


def make_passes(example_inputs: tuple, exact_only: bool = False) -> list[SlimPass]:
    """One instance of every merge pass for a model with these inputs: the exact ones only with ``exact_only``.
    (Compressions are steps of their own: ``slimmer.steps``.)"""
    kinds = EXACT_PASSES if exact_only else EXACT_PASSES + APPROXIMATE_PASSES
    return [kind.for_model(example_inputs) for kind in kinds]


def candidates(gm: fx.GraphModule, passes: Sequence[SlimPass], times: dict[str, float], example_inputs,
               original_macs: Optional[dict[str, int]] = None) -> list[tuple[Candidate, SlimPass]]:
    """Every match of every pass on ``gm`` with its estimated worth: merges before compression (``stage``),
    then best first."""
    macs = layer_macs(gm, example_inputs)
    costs = LayerCosts(times, macs, original_macs or macs)
    sizes = output_bytes(gm, example_inputs)
    found = []
    for slim_pass in passes:
        for match in slim_pass.matches(gm):
            saves, added = slim_pass.estimate(gm, match, costs)
            memory = sum(sizes.get(layer, 0) for layer in match.removed)
            found.append((Candidate(match, saves, added, memory), slim_pass))
    return sorted(found, key=rank)


def rank(pair: tuple[Candidate, SlimPass]) -> tuple:
    """How candidates are ordered: merges before compression (``stage``), then best first."""
    candidate, slim_pass = pair
    return slim_pass.stage, -candidate.gain_ms, -candidate.memory_bytes, candidate.match.layers, candidate.match.detail
