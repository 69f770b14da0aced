"""Layer-wise fine-tuning (DeepRebirth): a regenerated layer first learns to reproduce what the
original model computed at the same place (the teacher's activations at every place from one forward
pass per batch, kept while they fit in ``CACHE_BYTES``), then, optionally, the whole slimmed model
learns the original's logits and the labels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

StepCallback = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``."""

BLOCK_LR = 1e-3
"""Adam's rate for regenerated layers; the paper's SGD used 0.01 for them and 0.001 elsewhere."""
END_TO_END_LR = 1e-4
COMPRESSED_LR = 3e-4
"""Adam's first rate for a compressed network's end-to-end fine-tuning, decaying along a cosine: a network with
many layers thinned or decomposed has more to learn back than a merge (``END_TO_END_LR``, held)."""
CACHE_BYTES = 1 << 30
"""Teacher activations kept for reuse by later steps, at most; beyond it they are computed again when a
batch comes back. Decomposing every layer of GoogLeNet at 224 px would otherwise keep 57 layers' outputs
for 80 batches: 8.4 GB."""


def _native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


LOW_PRECISION = _native_bf16()
"""Fine-tuning computes its forward pass in bfloat16 (``torch.autocast``; the weights, their updates, the losses and
every judgement stay float32) where the CPU computes bfloat16 natively (AVX512-BF16 or AMX, oneDNN's kernels):
a step of full GoogLeNet at 224 px took 0.43 s against 0.61 s in float32 on this host, and ``rebirth optimize
zoo:googlenet`` made the same steps (11.46x, top-1 94.8% -> 95.7%) in 452 s against 506 s. Elsewhere bfloat16 would
be emulated, slower: float32. The fine-tuning then differs by machine, as float32 kernels do."""


def _forward_precision():
    """The context a fine-tuning forward pass runs in (``LOW_PRECISION``)."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=LOW_PRECISION)


class _Seen(Exception):  # noqa: N818 (a signal, not an error)
    """Raised by a tap once every tapped module has produced its output: the rest of the forward
    pass would compute nothing fine-tuning uses."""


class Taps:
    """The outputs of some modules of a model, for one forward pass that stops once all are seen."""

    def __init__(self, model: nn.Module, names: list[str]):
        self.values: list[Optional[torch.Tensor]] = [None] * len(names)
        self.handles = [model.get_submodule(name).register_forward_hook(self._keeper(index))
                        for index, name in enumerate(names)]

    def _keeper(self, index: int):
        def keep(_module, _inputs, output) -> None:
            self.values[index] = output
            if all(value is not None for value in self.values):
                raise _Seen

        return keep

    def __call__(self, model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
        self.values = [None] * len(self.values)
        try:
            model(images)
        except _Seen:
            pass
        values = [value for value in self.values if value is not None]
        if len(values) < len(self.values):
            raise RuntimeError("a tapped module did not run in the forward pass")
        return values

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def _names(target: str | tuple[str, ...]) -> list[str]:
    return [target] if isinstance(target, str) else list(target)


def fit_block(student: nn.Module, teacher: nn.Module, anchors, regenerated, batches: list[torch.Tensor],
              steps: int, seed: int = 0, progress: Optional[StepCallback] = None) -> float:
    """Train only the ``regenerated`` layers so that the student's anchors match the teacher's; last loss. The
    other parameters need no gradient meanwhile (their ``requires_grad`` is restored after), so the backward pass
    stops at the first regenerated layer and computes no weight gradient that is thrown away: the same steps,
    bit for bit, 1.7x faster on five layers of full GoogLeNet at 224 px."""
    if not anchors or not regenerated or steps <= 0:
        return 0.0
    torch.manual_seed(seed)
    order = [int(i) for i in torch.randperm(len(batches), generator=torch.Generator().manual_seed(seed))]
    targets = AnchorTargets(teacher, [original for _, original in anchors])
    params = [p for name in regenerated for p in student.get_submodule(name).parameters()]
    optimizer = torch.optim.Adam(params, lr=BLOCK_LR)
    taps = Taps(student, [slim for slim, _ in anchors])
    student.eval()  # BatchNorm statistics stay those of the original
    loss = torch.tensor(0.0)
    learning = {id(p) for p in params}
    frozen = [p for p in student.parameters() if p.requires_grad and id(p) not in learning]
    for p in frozen:  # no gradient is computed for what does not learn: the backward pass ends at the block
        p.requires_grad_(False)
    try:
        for step in range(steps):
            index = order[step % len(batches)]
            optimizer.zero_grad()
            with _forward_precision():
                outputs = taps(student, batches[index])
            losses = [F.mse_loss(output.float(), target)
                      for output, target in zip(outputs, targets(index, batches[index]))]
            loss = sum(losses[1:], start=losses[0])
            loss.backward()
            optimizer.step()
            if progress:
                progress("fine-tune", step + 1, steps)
    finally:
        for p in frozen:
            p.requires_grad_(True)
        taps.close()
        targets.close()
    return loss.item() if torch.is_tensor(loss) else float(loss)


class AnchorTargets:
    """The teacher's outputs at every anchor (a module, or several concatenated on channels) for a batch,
    all from one forward pass that stops at the last of them; kept per batch up to ``CACHE_BYTES``."""

    def __init__(self, teacher: nn.Module, targets: list[str | tuple[str, ...]]):
        self.teacher = teacher.eval()
        self.groups = [_names(target) for target in targets]
        self.names = list(dict.fromkeys(name for group in self.groups for name in group))
        self.taps = Taps(teacher, self.names)
        self.kept: dict[int, list[torch.Tensor]] = {}
        self.kept_bytes = 0

    @torch.no_grad()
    def __call__(self, index: int, images: torch.Tensor) -> list[torch.Tensor]:
        if index in self.kept:
            return self.kept[index]
        by_name = dict(zip(self.names, self.taps(self.teacher, images)))
        found = [torch.cat([by_name[name] for name in group], 1).clone() for group in self.groups]
        size = sum(value.numel() * value.element_size() for value in found)
        if self.kept_bytes + size <= CACHE_BYTES:
            self.kept[index], self.kept_bytes = found, self.kept_bytes + size
        return found

    def close(self) -> None:
        self.taps.close()


class TeacherLogits:
    """The training batches with the teacher's logits for each, computed when first needed and kept:
    every end-to-end pass of a slimming run learns from the same teacher. ``known`` are batches' logits computed
    before (``slimmer.memo.teacher_logits`` reads them from the cache); ``computed`` tells which are new."""

    def __init__(self, teacher: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
                 known: Optional[dict[int, torch.Tensor]] = None,
                 keep: Optional[Callable[[TeacherLogits], None]] = None):
        self.teacher, self.batches = teacher.eval(), batches
        self.logits: dict[int, torch.Tensor] = dict(known or {})
        self.known = set(self.logits)
        self.keep = keep
        """What keeps the logits computed in this run (``slimmer.memo``), called by ``kept``."""

    @property
    def computed(self) -> set[int]:
        """The batches whose logits this run computed."""
        return set(self.logits) - self.known

    def kept(self) -> None:
        """Hand the logits to ``keep`` where this run computed any."""
        if self.keep is not None and self.computed:
            self.keep(self)

    def __len__(self) -> int:
        return len(self.batches)

    @torch.no_grad()
    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(images, labels, teacher logits)`` of batch ``index``."""
        if index not in self.logits:
            self.logits[index] = self.teacher(self.batches[index][0])
        return (*self.batches[index], self.logits[index])


def fit_end_to_end(student: nn.Module, teacher: TeacherLogits, steps: int, seed: int = 0, labels: bool = True,
                   progress: Optional[StepCallback] = None, lr: float = END_TO_END_LR, decay: bool = False,
                   enough: Optional[Callable[[], bool]] = None) -> int:
    """All layers learn the teacher's logits (and the labels where there are labels), one batch per
    step in a seeded order, at Adam's rate ``lr``, decaying to zero along a cosine with ``decay``; ``enough`` is
    asked once, halfway, and a yes stops the training there. The steps taken."""
    if steps <= 0:
        return 0
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps) if decay else None
    order = [int(i) for i in torch.randperm(len(teacher), generator=torch.Generator().manual_seed(seed))]
    student.eval()
    for step in range(steps):
        images, target, logits_teacher = teacher[order[step % len(order)]]
        with _forward_precision():
            logits = student(images)
        loss = distillation_loss(logits.float(), logits_teacher, target if labels else None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
        if progress:
            progress("end-to-end", step + 1, steps)
        if enough is not None and step + 1 == steps // 2 and enough():
            return step + 1
    return steps


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor,
                      labels: Optional[torch.Tensor] = None) -> torch.Tensor:
    """How far ``logits`` are from the teacher's (KL divergence of the softmaxes), plus the cross-entropy with
    ``labels`` where the model learned them."""
    loss = F.kl_div(F.log_softmax(logits, dim=1), F.softmax(teacher_logits, dim=1), reduction="batchmean")
    return loss + F.cross_entropy(logits, labels) if labels is not None else loss
