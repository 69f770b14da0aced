"""Run passes over a copy of a model until none of them changes anything."""

from __future__ import annotations

from collections.abc import Sequence

from torch import fx, nn

from rebirth.slimmer.graph import trace
from rebirth.slimmer.passes.base import Match, SlimPass

MAX_ROUNDS = 10


def run_passes(model: nn.Module | fx.GraphModule, passes: Sequence[SlimPass]) -> tuple[fx.GraphModule, list[Match]]:
    """The slimmed copy of ``model`` and every match applied, in order. ``model`` is not changed."""
    gm = trace(model)
    applied: list[Match] = []
    for _ in range(MAX_ROUNDS):
        modified = False
        for slim_pass in passes:
            before = len(slim_pass.applied)
            result = slim_pass(gm)
            assert result is not None, "a SlimPass always returns a PassResult"
            gm, modified = result.graph_module, modified or result.modified
            applied.extend(slim_pass.applied[before:])
        if not modified:
            break
    return gm, applied
