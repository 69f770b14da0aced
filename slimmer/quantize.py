"""int8 post-training quantization, the slimmer's last step: ExecuTorch's own PT2E flow (XNNPACKQuantizer,
symmetric per-channel weights, int8 activations), calibrated on training batches, judged like a merge
(held-out top-1 or output fidelity, within what the budget has left) and kept only if it stays within."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rebirth.contract.quiet import quiet

CALIBRATION_BATCHES = 16
"""Training batches the observers see (512 images at the paper's batch of 32)."""


@dataclass
class Quantized:
    """A quantized model: its exported program (what is lowered to the .pte) and a module that computes
    what the int8 program computes (quantize/dequantize around float kernels), to judge it in PyTorch."""

    program: Any
    module: nn.Module
    layers: tuple[str, ...]
    """The convolutions and linear layers that now run in int8, by module path."""
    calibration_samples: int


def quantizable_layers(model: nn.Module) -> tuple[str, ...]:
    """Module paths of the layers XNNPACK's quantizer takes: convolutions and linear layers."""
    return tuple(name for name, module in model.named_modules() if isinstance(module, (nn.Conv2d, nn.Linear)))


def quantize_int8(model: nn.Module, example_inputs: tuple, calibration: Iterable[torch.Tensor]) -> Quantized:
    """``model`` quantized to int8 for XNNPACK after observing ``calibration`` batches; ``model`` is not changed.

    Raises:
        ValueError: the model has no convolution or linear layer to quantize.
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    layers = quantizable_layers(model)
    if not layers:
        raise ValueError("no convolution or linear layer to quantize")
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    samples = 0
    # Calibrated and judged in batches, lowered for the example's batch: captured with a batch of two, as
    # export specializes a dimension of size 1.
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic = tuple({0: batch} if torch.is_tensor(value) and value.dim() else None for value in example_inputs)
    doubled = tuple(torch.cat([value, value]) if torch.is_tensor(value) and value.dim() else value
                    for value in example_inputs)
    with quiet():
        captured = torch.export.export(model.eval(), doubled, dynamic_shapes=dynamic).module()
        prepared = prepare_pt2e(captured, quantizer)
        with torch.no_grad():
            for images in calibration:
                prepared(images)
                samples += len(images)
        converted = convert_pt2e(prepared)
        allow_exported_model_train_eval(converted)  # judged like any model, which calls eval()
        program = torch.export.export(converted, example_inputs)
    return Quantized(program, converted, layers, samples)


def calibration_batches(loader, batches: int = CALIBRATION_BATCHES) -> list[torch.Tensor]:
    """The first ``batches`` image batches of ``loader`` (the training split: held-out data judges)."""
    found = []
    for images, _ in loader:
        found.append(images)
        if len(found) >= batches:
            break
    return found


def runtime_refusal(pte) -> str | None:
    """Why ExecuTorch's runtime cannot load ``pte`` and run it once in this process, or None when it can: a
    lowered int8 program can still fail when XNNPACK builds its graph (a pad it has no int8 kernel for)."""
    from rebirth.devices.runner import load_runtime, make_inputs

    runtime = load_runtime()
    try:
        with quiet():
            module = runtime._load_for_executorch(str(pte), enable_etdump=False, debug_buffer_size=0)
            module.forward(make_inputs(module))
    except Exception as error:
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'no message'}"
    return None


def runtime_outputs(pte, loader):
    """The logits ExecuTorch's runtime computes with program ``pte`` for every sample of ``loader``, in order,
    one sample at a time (the program takes one image)."""
    import torch

    from rebirth.devices.runner import load_runtime

    with quiet():
        module = load_runtime()._load_for_executorch(str(pte), enable_etdump=False, debug_buffer_size=0)
        rows = [torch.as_tensor(module.forward((image[None].contiguous(),))[0]).reshape(-1)
                for images, _ in loader for image in images]
    return torch.stack(rows)
