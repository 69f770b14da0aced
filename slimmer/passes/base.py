"""One contract for every slimming pass, after torch.fx's pass infrastructure.

A pass finds ``Match``es (matching never changes the graph), then rewrites each one, and returns
``PassResult(graph_module, modified)``. Exact passes keep the outputs equal up to float rounding;
approximate ones regenerate layers that fine-tuning must then learn.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

from torch import fx, nn
from torch.fx.passes.infra.pass_base import PassBase, PassResult

from rebirth.slimmer.graph import bypass, finish, module_path, replace_module


@dataclass(frozen=True)
class Match:
    """What a pass found: the nodes involved (by name, in graph order) and the layers they call."""

    kind: str
    nodes: tuple[str, ...]
    layers: tuple[str, ...]
    exact: bool
    regenerated: tuple[str, ...] = ()
    """Layers (module paths after the rewrite) whose weights must be learned again: approximate passes."""
    anchors: tuple[tuple[str, str | tuple[str, ...]], ...] = ()
    """(slimmed module, original module) pairs whose outputs should agree: what fine-tuning matches.
    The original side may be several modules whose outputs, concatenated on channels, are the target."""
    removed: tuple[str, ...] = ()
    """Layers the rewrite removes from the graph."""
    detail: str = ""
    """What this match does beyond its kind, for a reader (a decomposition's ranks); part of its identity."""
    ranks: tuple[int, ...] = ()
    """A decomposition's ranks (``slimmer.passes.lowrank``)."""


@dataclass(frozen=True)
class LayerCosts:
    """What the planner knows of a graph's layers: the profile's measured p50 per layer (ms) and the
    multiply-accumulates of each conv and linear layer, now and in the original model."""

    times: dict[str, float]
    macs: dict[str, int]
    original_macs: dict[str, int]

    def measured(self, layers: tuple[str, ...]) -> float:
        """The measured time of ``layers``, summed."""
        return sum(self.times.get(layer, 0.0) for layer in layers)

    def scaled(self, layer: str) -> float:
        """The layer's measured time, scaled to its current size (an earlier merge may have changed it)."""
        measured = self.times.get(layer, 0.0)
        before, now = self.original_macs.get(layer), self.macs.get(layer)
        return measured * now / before if before and now else measured

    @functools.cached_property
    def fit(self) -> tuple[float, float]:
        """``(ms per layer, ms per multiply-accumulate)``: a least-squares line through the measured time and
        the work of the profile's convolution and linear layers, both terms at least 0 (``scipy.optimize.nnls``).
        What a layer that does not exist yet would take, on this device, as far as its profile can say. Where
        the points cannot place a line with both terms above 0 (fewer than 3 layers, one size of layer, or a
        time that does not grow with the work), the time per multiply-accumulate of all of them together."""
        import numpy as np
        from scipy.optimize import nnls

        points = [(float(self.original_macs[layer]), time) for layer, time in self.times.items()
                  if self.original_macs.get(layer)]
        total_macs, total_time = sum(m for m, _ in points), sum(t for _, t in points)
        if not total_macs:
            return 0.0, 0.0
        through_zero = 0.0, total_time / total_macs
        if len(points) < 3 or len({m for m, _ in points}) < 2:
            return through_zero
        work = np.array([[1.0, m] for m, _ in points])
        (per_layer, per_mac), _ = nnls(work, np.array([t for _, t in points]))
        return (float(per_layer), float(per_mac)) if per_layer > 0 and per_mac > 0 else through_zero

    def predict(self, macs: int) -> float:
        """The time a conv or linear layer doing ``macs`` multiply-accumulates is predicted to take (``fit``)."""
        per_layer, per_mac = self.fit
        return per_layer + per_mac * macs


class SlimPass(PassBase):
    """Subclasses set ``kind`` and ``exact`` and implement ``matches`` and ``rewrite``; a pass whose
    match costs or saves more than the measured time of the layers it removes overrides ``estimate``."""

    kind = ""
    exact = True
    stage = 0
    """The planner makes every worthwhile match of a lower stage first: 0 merges, 1 compression (the paper
    decomposed the network its merges had made)."""
    learns_from_current = False
    """True when regenerated layers learn the model as it was before this step (a decomposition reproduces
    the layer it replaces, merges included), False when they learn the original model's activations."""
    deletes_layers = False
    """True when the layers a match removes are deleted outright (an LRN, a dropout, a thin branch);
    False when their work is merged into a neighbour (a BatchNorm folded, a pool made a stride)."""

    verb = "merged"
    """What the step did, for a reader: ``decomposed 9 layers to 28% of their MACs``."""
    gerund = "merging"

    def __init__(self):
        super().__init__()
        self.applied: list[Match] = []

    @classmethod
    def for_model(cls, example_inputs: tuple) -> SlimPass:
        """An instance for a model with these example inputs (a pass that matches on shapes keeps them)."""
        return cls()

    def matches(self, gm: fx.GraphModule) -> list[Match]:
        raise NotImplementedError

    def rewrite(self, gm: fx.GraphModule, match: Match) -> None:
        raise NotImplementedError

    def estimate(self, gm: fx.GraphModule, match: Match, costs: LayerCosts) -> tuple[float, float]:
        """(ms saved, ms added) by one match: by default the measured time of the layers it removes."""
        return costs.measured(match.removed), 0.0

    def group_anchors(self, chosen: list[Match]) -> tuple[tuple[str, str | tuple[str, ...]], ...]:
        """What the layers of matches made together in one step must reproduce (stage 1 makes a step of all
        the layers worth it): every match's anchors."""
        return tuple(pair for match in chosen for pair in match.anchors)

    def call(self, gm: fx.GraphModule) -> PassResult:
        """Rewrite every match that shares no node with one rewritten before it in this call (a later
        call, on the rewritten graph, finds the others again if they still hold)."""
        touched: set[str] = set()
        done = []
        for match in self.matches(gm):
            if touched.isdisjoint(match.nodes):
                self.rewrite(gm, match)
                touched.update(match.nodes)
                done.append(match)
        self.applied.extend(done)
        return PassResult(finish(gm) if done else gm, bool(done))

    def apply(self, gm: fx.GraphModule, match: Match) -> fx.GraphModule:
        """Rewrite one match found on ``gm`` (the planner applies merges one at a time)."""
        self.rewrite(gm, match)
        self.applied.append(match)
        return finish(gm)


class RemoveLayer(SlimPass):
    """A pass that deletes single layers outright: each match's first node is bypassed."""

    deletes_layers = True

    def rewrite(self, gm: fx.GraphModule, match: Match) -> None:
        bypass(nodes_by_name(gm)[match.nodes[0]])


class PairPass(SlimPass):
    """A pass that makes one layer of two adjacent ones: the layer at ``into`` (0 or 1) becomes ``merged(first,
    second)`` and the other node is bypassed (a BatchNorm folded into a convolution, a pool into the convolution
    after it). Subclasses find the ``pairs`` and say how they are ``merged``."""

    into = 0

    def pairs(self, gm: fx.GraphModule) -> Iterator[tuple[fx.Node, fx.Node]]:
        raise NotImplementedError

    def merged(self, first: nn.Module, second: nn.Module) -> nn.Module:
        raise NotImplementedError

    def matches(self, gm: fx.GraphModule) -> list[Match]:
        """One match a pair: the layer that goes is removed; an approximate pass regenerates the one that stays."""
        found = []
        for pair in self.pairs(gm):
            names, paths = tuple(node.name for node in pair), tuple(module_path(node) for node in pair)
            kept = paths[self.into]
            learned = () if self.exact else (kept,)
            found.append(Match(self.kind, names, paths, self.exact, learned, tuple((path, path) for path in learned),
                               removed=(paths[1 - self.into],)))
        return found

    def rewrite(self, gm: fx.GraphModule, match: Match) -> None:
        nodes = nodes_by_name(gm)
        pair = [nodes[name] for name in match.nodes]
        first, second = (gm.get_submodule(module_path(node)) for node in pair)
        replace_module(gm, module_path(pair[self.into]), self.merged(first, second))
        bypass(pair[1 - self.into])


class Compression(SlimPass):
    """A pass made after every merge, as one step over all the layers where it pays (``slimmer.steps``), whose
    layers learn the model as it stands."""

    exact = False
    stage = 1
    learns_from_current = True


class ShapedPass(SlimPass):
    """A pass whose matching needs tensor shapes: it keeps example inputs to propagate them."""

    def __init__(self, example_inputs: tuple):
        super().__init__()
        self.example_inputs = example_inputs

    @classmethod
    def for_model(cls, example_inputs: tuple) -> SlimPass:
        return cls(example_inputs)

    def shapes(self, gm: fx.GraphModule) -> dict[str, tuple[int, ...]]:
        return shapes(gm, self.example_inputs)


def shapes(gm: fx.GraphModule, example_inputs) -> dict[str, tuple[int, ...]]:
    """Output shape of every tensor-valued node for the example inputs."""
    from torch.fx.passes.shape_prop import ShapeProp

    ShapeProp(gm).propagate(*example_inputs)
    return {node.name: tuple(node.meta["tensor_meta"].shape) for node in gm.graph.nodes
            if hasattr(node.meta.get("tensor_meta"), "shape")}


def nodes_by_name(gm: fx.GraphModule) -> dict[str, fx.Node]:
    return {node.name: node for node in gm.graph.nodes}
