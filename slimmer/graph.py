"""Models as torch.fx graphs of modules: trace a copy, find modules, swap them, tidy up.

The caller's model is never touched: ``trace`` deep-copies it once, in eval mode, and every pass
works on that copy. Layers rebirth knows as units (its LocalResponseNorm) stay leaves.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Optional, TypeVar

import torch
from torch import fx, nn

LEAF_TYPES: tuple[type, ...] = ()

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def _leaf_types() -> tuple[type, ...]:
    from rebirth.models.zoo.lrn import LocalResponseNorm

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


def module_path(node: fx.Node) -> str:
    """The dotted path of the module a ``call_module`` node calls (its target)."""
    assert node.op == "call_module" and isinstance(node.target, str), f"{node.name} calls no module"
    return node.target


def input_node(node: fx.Node, index: int = 0) -> fx.Node:
    """The node's positional argument ``index``, which must be another node."""
    arg = node.args[index]
    assert isinstance(arg, fx.Node), f"argument {index} of {node.name} is not a node"
    return arg


def module_of(gm: fx.GraphModule, node: fx.Node) -> Optional[nn.Module]:
    """The module a ``call_module`` node calls, else None."""
    return gm.get_submodule(module_path(node)) if node.op == "call_module" else None


def submodule(gm: fx.GraphModule, node: fx.Node, kind: type[ModuleT]) -> ModuleT:
    """The module a ``call_module`` node calls, which must be a ``kind``."""
    module = gm.get_submodule(module_path(node))
    assert isinstance(module, kind), f"{node.name} calls a {type(module).__name__}, not a {kind.__name__}"
    return module


def only_user(node: fx.Node) -> Optional[fx.Node]:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def read_alone(gm: fx.GraphModule) -> Iterator[tuple[fx.Node, nn.Module, fx.Node, nn.Module]]:
    """``(node, its module, reader, the reader's module)`` for every module call whose output one module call
    alone reads, as its first argument."""
    for node in gm.graph.nodes:
        module = module_of(gm, node)
        reader = only_user(node) if module is not None else None
        read_by = module_of(gm, reader) if reader is not None else None
        if module is not None and reader is not None and read_by is not None and _reads_first(reader, node):
            yield node, module, reader, read_by


def _reads_first(reader: fx.Node, node: fx.Node) -> bool:
    return bool(reader.args) and reader.args[0] is node


def replace_module(gm: fx.GraphModule, target: str, module: nn.Module) -> None:
    """Put ``module`` where ``target`` is (a dotted path)."""
    parent_name, _, name = target.rpartition(".")
    setattr(gm.get_submodule(parent_name) if parent_name else gm, name, module)


def bypass(node: fx.Node) -> None:
    """Remove ``node`` from the graph, its users reading its first input instead."""
    node.replace_all_uses_with(input_node(node))
    node.graph.erase_node(node)


def finish(gm: fx.GraphModule) -> fx.GraphModule:
    """Drop dead nodes and modules nothing calls, check the graph, regenerate its code."""
    gm.graph.eliminate_dead_code()
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def conv2d_like(conv: nn.Conv2d, out_channels: int, groups: int, bias: bool,
                in_channels: Optional[int] = None) -> nn.Conv2d:
    """A new convolution, freshly initialised, with ``conv``'s input channels (or ``in_channels``), kernel size,
    stride, padding, dilation and padding mode."""
    sizes = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    return nn.Conv2d(conv.in_channels if in_channels is None else in_channels, out_channels,
                     *sizes,  # type: ignore[arg-type]  # sizes typed tuple[int, ...]
                     groups, bias, conv.padding_mode)


def bias_of(conv: nn.Conv2d | nn.Linear) -> torch.Tensor:
    """The bias of a convolution (or linear layer) that has one."""
    assert conv.bias is not None, "the convolution has no bias"
    return conv.bias


def running_stats(norm: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """The running mean and variance of a BatchNorm that tracks them."""
    assert norm.running_mean is not None and norm.running_var is not None, "the BatchNorm tracks no statistics"
    return norm.running_mean, norm.running_var


def count_modules(gm: fx.GraphModule, kind: type) -> int:
    return sum(1 for node in gm.graph.nodes if isinstance(module_of(gm, node), kind))
