"""The original model's held-out logits, and its logits on the training batches that end-to-end fine-tuning learns
from, kept on disk by what they are computed from, so that slimming the same model on the same data again (another
budget, another technique, the same command again) does not compute them again: a pass over the 899 held-out
digits at 224 px takes full-size GoogLeNet 24-28 s on this host, its 113 training batches of 8 about 29 s.

The key is a hash of everything the logits depend on: the graph's code, every parameter and buffer (names,
types, shapes, bytes), every other attribute of every module (its ``repr``: one without a stable ``repr``, such as
a function, makes the key new each run, so it is never reused), the held-out images and labels, how they are
laid out and cut into pieces, and the torch version and CPU capability that compute them. Anything not read back
whole and of the right shape is computed again. A loader that does more than read tensors held in memory is not
cached (``held_out_logits``)."""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path
from typing import Optional

import numpy
import torch
from torch import nn
from torch.utils.data import DataLoader, SequentialSampler, TensorDataset, default_collate

from rebirth.slimmer.finetune import TeacherLogits
from rebirth.slimmer.train import INFERENCE_ELEMENTS, exported, logits_of

VERSION = b"rebirth held-out logits 1"
MOST_BYTES = 64 << 20
"""Larger logits are not kept (899 digits: 36 KB)."""
_SKIPPED = {"_parameters", "_buffers", "_modules", "training",  # hashed as tensors, walked, or set by eval()
            "_graph", "_code", "_lineno_map", "_prologue_start", "_tracer_cls", "_tracer_extras", "meta"}
"""Module attributes left out of the key: what it holds otherwise (a GraphModule's graph is its ``code``), or what
does not change the logits. Hooks are in it: a module with a hook gets a new key each run."""


def memo_dir() -> Path:
    from rebirth.contract.cache import cache_root

    return cache_root() / "logits"


def held_out_logits(model: nn.Module, held_out) -> tuple[torch.Tensor, torch.Tensor]:
    """``logits_of(model, held_out)``, read from the cache when this model scored this data before. Only a loader
    that reads tensors held in memory in order (``_in_memory``, as the built-in digits are) is cached: the key
    must read every sample, and a user's loader may decode files or draw augmentations on each pass."""
    if not _in_memory(held_out):
        return logits_of(model, held_out)
    key = _key(model, held_out)
    path = memo_dir() / f"{key}.pt"
    found = _read(path)
    if found is not None:
        return found
    logits, labels = logits_of(model, held_out)
    if logits.numel() * logits.element_size() <= MOST_BYTES:
        _write(path, logits, labels)
    return logits, labels


def teacher_logits(teacher: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
                   loader) -> TeacherLogits:
    """``TeacherLogits(teacher, batches)`` with the logits of every batch an earlier run computed read from the
    cache; the ones this run computes are kept when it calls ``TeacherLogits.kept``. ``batches`` are ``loader``'s,
    in order, laid out; only a loader that reads tensors held in memory in order is cached (``held_out_logits``)."""
    if not _in_memory(loader):
        return TeacherLogits(teacher, batches)
    path = memo_dir() / f"{_key(teacher, loader, TRAINING)}.pt"
    return TeacherLogits(teacher, batches, _read_batches(path, [len(labels) for _, labels in batches]),
                         lambda logits: _write_batches(path, logits))


TRAINING = "training batches, each whole"
"""What the training logits' key adds: each batch is computed whole (``TeacherLogits``), not in ``pieces``."""


def _read_batches(path: Path, sizes: list[int]) -> dict[int, torch.Tensor]:
    """The batches' logits kept at ``path``, each one a row per sample of its batch; none when unreadable."""
    try:
        kept = torch.load(path, weights_only=True)
        found = {int(index): logits for index, logits in kept["batches"].items()}
    except _UNREADABLE:
        return {}
    if not all(0 <= index < len(sizes) and isinstance(logits, torch.Tensor) and logits.dim() == 2 and
               len(logits) == sizes[index] for index, logits in found.items()):
        return {}
    return found


def _write_batches(path: Path, logits: TeacherLogits) -> None:
    if sum(value.numel() * value.element_size() for value in logits.logits.values()) <= MOST_BYTES:
        _save(path, {"batches": logits.logits})


def _key(model: nn.Module, held_out, what: str = "") -> str:
    digest = hashlib.blake2b(VERSION, digest_size=20)

    def add(*parts: object) -> None:
        for part in parts:
            if isinstance(part, numpy.ndarray):
                digest.update(part.data)
            else:
                digest.update(part if isinstance(part, bytes) else repr(part).encode())
            digest.update(b"\0")

    add(torch.__version__, torch.backends.cpu.get_cpu_capability(), INFERENCE_ELEMENTS, getattr(model, "code", ""),
        exported(model))  # how the images are laid out (``laid_out``)
    for name, module in model.named_modules():
        add(name, type(module).__qualname__, type(module).__module__,
            sorted((key, _stable(value)) for key, value in vars(module).items()
                   if key not in _SKIPPED and not isinstance(value, torch.Tensor)))
    for name, tensor in (*model.named_parameters(), *model.named_buffers()):
        add(name, tensor.dtype, tuple(tensor.shape), _bytes(tensor))
    add(held_out.batch_size, held_out.drop_last)
    if what:  # the held-out logits' keys stay those of the caches written before training logits were kept
        add(what)
    for tensor in held_out.dataset.tensors:
        add(tensor.dtype, tuple(tensor.shape), _bytes(tensor))
    return digest.hexdigest()


def _in_memory(held_out) -> bool:
    """A loader of a ``TensorDataset`` in order, batched by the default collation, in this process."""
    return isinstance(held_out, DataLoader) and isinstance(held_out.dataset, TensorDataset) and \
        isinstance(held_out.sampler, SequentialSampler) and held_out.collate_fn is default_collate and \
        held_out.num_workers == 0 and held_out.batch_size is not None


def _stable(value: object) -> object:
    """``value`` with its sets in a fixed order: a set of strings is iterated in an order that changes between
    processes (string hashing is seeded per process)."""
    if isinstance(value, (set, frozenset)):
        return sorted(repr(item) for item in value)
    return value


def _bytes(tensor: torch.Tensor) -> numpy.ndarray:
    """The tensor's bytes, without a copy where it is contiguous already."""
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()


_UNREADABLE = (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError, AttributeError, pickle.UnpicklingError)
"""What reading a cache file that is not whole, or not one of rebirth's, raises."""


def _read(path: Path) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    try:
        kept = torch.load(path, weights_only=True)
        logits, labels = kept["logits"], kept["labels"]
    except _UNREADABLE:
        return None
    if not (isinstance(logits, torch.Tensor) and isinstance(labels, torch.Tensor)) or logits.dim() != 2 or \
            len(logits) != len(labels):
        return None
    return logits, labels


def _write(path: Path, logits: torch.Tensor, labels: torch.Tensor) -> None:
    _save(path, {"logits": logits, "labels": labels})


def _save(path: Path, kept: dict) -> None:
    """Best effort, whole or not at all: a cache that cannot be written is a cache not kept."""
    from rebirth.contract.files import write_text_atomic

    buffer = io.BytesIO()
    torch.save(kept, buffer)
    try:
        write_text_atomic(path, buffer.getvalue())
    except OSError:
        pass
