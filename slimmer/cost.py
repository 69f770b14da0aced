"""What a graph costs, counted: multiply-accumulates and parameters per layer, activation bytes."""

from __future__ import annotations

from torch import fx, nn

from slimmer.graph import module_of
from slimmer.passes.base import shapes


def layer_macs(gm: fx.GraphModule, example_inputs) -> dict[str, int]:
    """Multiply-accumulates of each conv and linear layer, by module path, for the example inputs."""
    known = shapes(gm, example_inputs)
    macs = {}
    for node in gm.graph.nodes:
        module = module_of(gm, node)
        out = known.get(node.name)
        if isinstance(module, nn.Conv2d) and out:
            kernel = module.kernel_size[0] * module.kernel_size[1]
            macs[node.target] = out[0] * out[1] * out[2] * out[3] * kernel * module.in_channels // module.groups
        elif isinstance(module, nn.Linear) and out:
            macs[node.target] = module.in_features * module.out_features * (out[0] if len(out) > 1 else 1)
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
