"""Layer-wise fine-tuning (DeepRebirth): a regenerated layer first learns to reproduce what the
original model computed at the same place (the teacher's activations, cached once per place),
then, optionally, the whole slimmed model learns the original's logits and the labels."""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

StepCallback = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``."""

BLOCK_LR = 1e-3
"""Adam's rate for regenerated layers; the paper's SGD used 0.01 for them and 0.001 elsewhere."""
END_TO_END_LR = 1e-4


class Capture:
    """Keeps the latest output of a module (a forward hook)."""

    def __init__(self, module: nn.Module):
        self.value: Optional[torch.Tensor] = None
        self.handle = module.register_forward_hook(self._keep)

    def _keep(self, _module, _inputs, output) -> None:
        self.value = output

    def close(self) -> None:
        self.handle.remove()


@torch.no_grad()
def teacher_outputs(teacher: nn.Module, target: str | tuple[str, ...], batches: list[torch.Tensor]) -> list[torch.Tensor]:
    """The teacher's outputs at module ``target`` (or several modules' outputs concatenated on channels)
    for each batch, computed once."""
    teacher.eval()
    captures = [Capture(teacher.get_submodule(name)) for name in ((target,) if isinstance(target, str) else target)]
    try:
        cached = []
        for images in batches:
            teacher(images)
            cached.append(torch.cat([capture.value.detach() for capture in captures], 1).clone())
        return cached
    finally:
        for capture in captures:
            capture.close()


def fit_block(student: nn.Module, teacher: nn.Module, anchors, regenerated, batches: list[torch.Tensor],
              steps: int, seed: int = 0, progress: Optional[StepCallback] = None) -> float:
    """Train only the ``regenerated`` layers so that the student's anchors match the teacher's; last loss."""
    if not anchors or not regenerated or steps <= 0:
        return 0.0
    torch.manual_seed(seed)
    targets = [teacher_outputs(teacher, original, batches) for _, original in anchors]
    params = [p for name in regenerated for p in student.get_submodule(name).parameters()]
    optimizer = torch.optim.Adam(params, lr=BLOCK_LR)
    captures = [Capture(student.get_submodule(slim)) for slim, _ in anchors]
    order = torch.randperm(len(batches), generator=torch.Generator().manual_seed(seed))
    student.eval()  # BatchNorm statistics stay those of the original
    loss = torch.tensor(0.0)
    try:
        for step in range(steps):
            index = int(order[step % len(batches)])
            optimizer.zero_grad()
            student(batches[index])
            loss = sum(F.mse_loss(c.value, t[index]) for c, t in zip(captures, targets))
            loss.backward()
            optimizer.step()
            if progress:
                progress("fine-tune", step + 1, steps)
    finally:
        for capture in captures:
            capture.close()
    return loss.item() if torch.is_tensor(loss) else float(loss)


def fit_end_to_end(student: nn.Module, teacher: nn.Module, loader: DataLoader, steps: int, seed: int = 0,
                   labels: bool = True, progress: Optional[StepCallback] = None) -> None:
    """All layers learn the teacher's logits (and the labels where there are labels)."""
    if steps <= 0:
        return
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(student.parameters(), lr=END_TO_END_LR)
    teacher.eval()
    student.eval()
    done = 0
    while done < steps:
        for images, target in loader:
            with torch.no_grad():
                soft = F.softmax(teacher(images), dim=1)
            logits = student(images)
            loss = F.kl_div(F.log_softmax(logits, dim=1), soft, reduction="batchmean")
            if labels:
                loss = loss + F.cross_entropy(logits, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if progress:
                progress("end-to-end", done, steps)
            if done >= steps:
                return
