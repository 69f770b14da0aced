"""Models as torch.fx graphs of modules: trace a copy, find modules, swap them, tidy up.

The caller's model is never touched: ``trace`` deep-copies it once, in eval mode, and every pass
works on that copy. Layers rebirth knows as units (its LocalResponseNorm) stay leaves.
"""

from __future__ import annotations

import copy
from typing import Optional

from torch import fx, nn

LEAF_TYPES: tuple[type, ...] = ()


def _leaf_types() -> tuple[type, ...]:
    from profiler.zoo.lrn import LocalResponseNorm

    return (LocalResponseNorm, nn.LocalResponseNorm) + LEAF_TYPES


class _Tracer(fx.Tracer):
    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, _leaf_types()) or super().is_leaf_module(module, qualified_name)


def trace(model: nn.Module) -> fx.GraphModule:
    """An eval-mode fx graph of a deep copy of ``model``.

    Raises:
        torch.fx.proxy.TraceError: the model has data-dependent control flow.
    """
    copied = copy.deepcopy(model).eval()
    graph = _Tracer().trace(copied)
    return fx.GraphModule(copied, graph, type(model).__name__)


def module_of(gm: fx.GraphModule, node: fx.Node) -> Optional[nn.Module]:
    """The module a ``call_module`` node calls, else None."""
    return gm.get_submodule(node.target) if node.op == "call_module" else None


def only_user(node: fx.Node) -> Optional[fx.Node]:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def replace_module(gm: fx.GraphModule, target: str, module: nn.Module) -> None:
    """Put ``module`` where ``target`` is (a dotted path)."""
    parent_name, _, name = target.rpartition(".")
    setattr(gm.get_submodule(parent_name) if parent_name else gm, name, module)


def bypass(node: fx.Node) -> None:
    """Remove ``node`` from the graph, its users reading its first input instead."""
    node.replace_all_uses_with(node.args[0])
    node.graph.erase_node(node)


def finish(gm: fx.GraphModule) -> fx.GraphModule:
    """Drop dead nodes and modules nothing calls, check the graph, regenerate its code."""
    gm.graph.eliminate_dead_code()
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def count_modules(gm: fx.GraphModule, kind: type) -> int:
    return sum(1 for node in gm.graph.nodes if isinstance(module_of(gm, node), kind))
