"""int8 post-training quantization, the slimmer's last step: ExecuTorch's own PT2E flow (XNNPACKQuantizer,
symmetric per-channel weights, int8 activations), calibrated on training batches, judged like a merge
(held-out top-1 or output fidelity, within what the budget has left) and kept only if it stays within."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from rebirth.contract.quiet import quiet
from rebirth.slimmer.finetune import StepCallback, TeacherLogits, distillation_loss
from rebirth.slimmer.train import laid_out

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
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    layers = _layers_of(model)
    samples = 0
    with quiet():
        prepared = prepare_pt2e(_captured(model, example_inputs), _quantizer(qat=False))
        with torch.no_grad():
            for images in calibration:
                prepared(images)
                samples += len(images)
        return _converted(prepared, example_inputs, layers, samples)


@dataclass(frozen=True)
class Learned:
    """What quantization-aware training made: the int8 model and how long it learned."""

    quantized: Quantized
    steps: int
    seconds: float


def learn_int8(model: nn.Module, example_inputs: tuple, teacher: TeacherLogits, steps: int,
               enough: Callable[[nn.Module], bool], labels: bool = True, seed: int = 0,
               progress: Optional[StepCallback] = None) -> Learned:
    """``model`` quantized to int8 for XNNPACK by quantization-aware training (PT2E ``prepare_qat_pt2e``): it
    learns ``teacher``'s logits (and the labels, with ``labels``) through int8 fake quantization, and every
    ``check_every(steps)`` steps a converted copy is asked ``enough(int8 model)``; training stops at the first
    yes, or after ``steps``. BatchNorm keeps the running statistics it has (the exported model is moved to eval,
    as every fine-tuning in the slimmer does): the teacher's logits were computed with them, and a few hundred
    batches of 32 would estimate them worse. ``model`` is not changed.

    Raises:
        ValueError: the model has no convolution or linear layer to quantize.
    """
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    layers = _layers_of(model)
    start = time.perf_counter()
    with quiet():
        prepared = prepare_qat_pt2e(_captured(model, example_inputs), _quantizer(qat=True))
        move_exported_model_to_eval(prepared)
        done, samples = _train(prepared, teacher, steps, enough, labels, seed, progress)
        quantized = _converted(prepared, example_inputs, layers, samples)
    return Learned(quantized, done, time.perf_counter() - start)


QAT_LR = 1e-5
"""Adam's rate for quantization-aware training, a tenth of the end-to-end fine-tuning's: int8 activations share
one scale per tensor, and faster steps moved a wide channel's weights, so every scale, back and forth (measured on
the outlier network of the tests: the held-out loss swung by 20 points between checks at 1e-4, fell steadily at
1e-5)."""


def check_every(steps: int) -> int:
    """How often quantization-aware training checks its int8 model: eight times over its steps, at most every
    10 steps (a check converts the model and scores the held-out samples)."""
    return max(10, -(-steps // 8))


def _train(prepared: nn.Module, teacher: TeacherLogits, steps: int, enough: Callable[[nn.Module], bool],
           labels: bool, seed: int, progress: Optional[StepCallback]) -> tuple[int, int]:
    """Train ``prepared`` until a check says ``enough`` or ``steps`` are done: the steps taken, and the training
    samples seen."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(prepared.parameters(), lr=QAT_LR)
    order = [int(i) for i in torch.randperm(len(teacher), generator=torch.Generator().manual_seed(seed))]
    every, samples = check_every(steps), 0
    for step in range(1, steps + 1):
        images, target, logits_teacher = teacher[order[(step - 1) % len(order)]]
        samples += len(images)
        loss = distillation_loss(prepared(laid_out(images, prepared)), logits_teacher, target if labels else None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if progress:
            progress("int8 training", step, steps)
        if (step % every == 0 or step == steps) and enough(_converted_copy(prepared)):
            return step, samples
    return steps, samples


def _converted_copy(prepared: nn.Module) -> nn.Module:
    """The int8 model ``prepared`` stands for now, converted from a copy (training goes on with ``prepared``)."""
    import copy

    return _int8_module(copy.deepcopy(prepared))


def _int8_module(prepared: nn.Module) -> nn.Module:
    """``prepared`` converted to the int8 model it observed or learned (``prepared`` is converted in place), to be
    judged like any model, which calls eval()."""
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    converted = convert_pt2e(prepared)
    allow_exported_model_train_eval(converted)
    return converted


def _layers_of(model: nn.Module) -> tuple[str, ...]:
    layers = quantizable_layers(model)
    if not layers:
        raise ValueError("no convolution or linear layer to quantize")
    return layers


def _quantizer(qat: bool):
    """XNNPACK's quantizer: symmetric per-channel int8 weights, int8 activations (fake-quantized to learn)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=qat))


def _captured(model: nn.Module, example_inputs: tuple) -> torch.fx.GraphModule:
    """``model`` exported for the quantizer: calibrated, trained and judged in batches, lowered later for the
    example's batch; captured with a batch of two, as export specializes a dimension of size 1."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic = tuple({0: batch} if torch.is_tensor(value) and value.dim() else None for value in example_inputs)
    doubled = tuple(torch.cat([value, value]) if torch.is_tensor(value) and value.dim() else value
                    for value in example_inputs)
    return torch.export.export(model.eval(), doubled, dynamic_shapes=dynamic).module()


def _converted(prepared: nn.Module, example_inputs: tuple, layers: tuple[str, ...], samples: int) -> Quantized:
    """The int8 model ``prepared`` observed or learned, and its program exported for the example's batch."""
    converted = _int8_module(prepared)
    return Quantized(torch.export.export(converted, example_inputs), converted, layers, samples)


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
