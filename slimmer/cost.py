"""What a graph costs, counted: multiply-accumulates and parameters per layer, activation bytes."""

from __future__ import annotations

import torch
from torch import fx, nn

from rebirth.slimmer.passes.base import shapes


def layer_macs(gm: fx.GraphModule, example_inputs) -> dict[str, int]:
    """Multiply-accumulates of each conv and linear layer, by module path, for the example inputs; a layer
    that is a chain of them (a decomposition) counts all of its parts."""
    counted: dict[str, int] = {}

    def count(name: str, module: nn.Conv2d | nn.Linear, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1]
            work = output.numel() * kernel * module.in_channels // module.groups
        else:
            work = output.numel() * module.in_features
        counted[name] = counted.get(name, 0) + work

    handles = [module.register_forward_hook(lambda m, _i, out, name=name: count(name, m, out))
               for name, module in gm.named_modules() if isinstance(module, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            gm(*example_inputs)
    finally:
        for handle in handles:
            handle.remove()
    macs = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            target = str(node.target)
            work = sum(value for name, value in counted.items() if name == target or name.startswith(target + "."))
            if work:
                macs[target] = work
    return macs


def output_bytes(gm: fx.GraphModule, example_inputs) -> dict[str, int]:
    """Bytes of each module call's output (float32), by module path."""
    known = shapes(gm, example_inputs)
    sizes = {}
    for node in gm.graph.nodes:
        if node.op == "call_module" and node.name in known:
            count = 1
            for dim in known[node.name]:
                count *= dim
            sizes[node.target] = count * 4
    return sizes


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
