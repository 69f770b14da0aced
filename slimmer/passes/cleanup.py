"""Identity layers and eval-mode dropout do nothing at inference: remove them (exact)."""

from __future__ import annotations

from torch import fx, nn

from rebirth.slimmer.graph import bypass, module_of
from rebirth.slimmer.passes.base import Match, SlimPass, nodes_by_name

NO_OPS = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


class RemoveNoOps(SlimPass):
    kind = "remove_no_op"
    exact = True
    deletes_layers = True

    def matches(self, gm: fx.GraphModule) -> list[Match]:
        found = []
        for node in gm.graph.nodes:
            module = module_of(gm, node)
            if isinstance(module, NO_OPS) and not module.training and len(node.args) == 1:
                found.append(Match(self.kind, (node.name,), (node.target,), True, removed=(node.target,)))
        return found

    def rewrite(self, gm: fx.GraphModule, match: Match) -> None:
        bypass(nodes_by_name(gm)[match.nodes[0]])
