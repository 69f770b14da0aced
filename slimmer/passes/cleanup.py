"""Identity layers and eval-mode dropout do nothing at inference: remove them (exact)."""

from __future__ import annotations

from torch import fx, nn

from rebirth.slimmer.graph import module_of
from rebirth.slimmer.passes.base import Match, RemoveLayer

NO_OPS = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


class RemoveNoOps(RemoveLayer):
    kind = "remove_no_op"
    exact = True

    def matches(self, gm: fx.GraphModule) -> list[Match]:
        return [Match(self.kind, (node.name,), (node.target,), True, removed=(node.target,))
                for node in gm.graph.nodes if _no_op(module_of(gm, node)) and len(node.args) == 1]


def _no_op(module: nn.Module | None) -> bool:
    return isinstance(module, NO_OPS) and not module.training
