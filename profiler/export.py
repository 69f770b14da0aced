"""Lower a model to a .pte and its ETRecord, for the portable runtime or XNNPACK."""

from __future__ import annotations

import enum
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from profiler.errors import InputError
from profiler.quiet import quiet
from profiler.sources import PTE, ModelSpec, fingerprint, load_exported


class Backend(str, enum.Enum):
    """Backends a model can be lowered to; the values are the CLI's choices."""

    PORTABLE = "portable"
    XNNPACK = "xnnpack"


@dataclass(frozen=True)
class Exported:
    """A .pte on disk, its ETRecord if there is one, and how it was made."""

    pte: Path
    etrecord: Optional[Path]
    backend: str
    source: str


def lower(exported_program, backend: Backend | str):
    """``to_edge_transform_and_lower`` then ``to_executorch``, with an ETRecord."""
    from executorch.exir import to_edge_transform_and_lower

    partitioners = []
    if Backend(backend) is Backend.XNNPACK:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        partitioners = [XnnpackPartitioner()]
    with quiet():
        edge = to_edge_transform_and_lower(exported_program, partitioner=partitioners, generate_etrecord=True)
        return edge.to_executorch()


def export_to(spec: ModelSpec, backend: Backend | str, out_pte: Path) -> Exported:
    """Write ``out_pte`` and ``out_pte`` with suffix ``.etrecord``; both appear whole or not at all.

    Raises:
        InputError: the spec is a .pte or cannot be exported.
    """
    program = lower(load_exported(spec), backend)
    etrecord = out_pte.with_suffix(".etrecord")
    out_pte.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_pte.parent, prefix=".export-") as staging:
        staged_pte, staged_etrecord = Path(staging) / "model.pte", Path(staging) / "model.etrecord"
        staged_pte.write_bytes(program.buffer)
        with quiet():
            program.get_etrecord().save(str(staged_etrecord))
        os.replace(staged_etrecord, etrecord)
        os.replace(staged_pte, out_pte)
    return Exported(out_pte, etrecord, Backend(backend).value, spec.text)


def cache_root() -> Path:
    """rebirth's cache: ``$REBIRTH_CACHE``, else ``$XDG_CACHE_HOME/rebirth`` or ``~/.cache/rebirth``."""
    root = os.environ.get("REBIRTH_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rebirth"
    return Path(root)


def cache_dir() -> Path:
    """Where exported models are cached."""
    return cache_root() / "exports"


def ensure_pte(spec: ModelSpec, backend: Backend | str, etrecord: Optional[Path] = None) -> Exported:
    """A .pte for ``spec``: the file itself for a .pte, else a cached export.

    For a .pte, the ETRecord is ``etrecord`` if given, else ``NAME.etrecord`` beside it.

    Raises:
        InputError: an explicit ETRecord that does not exist.
    """
    if spec.kind == PTE:
        if etrecord is not None and not Path(etrecord).is_file():
            raise InputError(f"{etrecord}: no such ETRecord")
        beside = spec.path.with_suffix(".etrecord")
        found = Path(etrecord) if etrecord else (beside if beside.is_file() else None)
        return Exported(spec.path, found, "unknown", spec.text)
    backend = Backend(backend)
    target = cache_dir() / f"{spec.label}-{fingerprint(spec)}-{backend.value}.pte"
    if target.is_file() and target.with_suffix(".etrecord").is_file():
        return Exported(target, target.with_suffix(".etrecord"), backend.value, spec.text)
    return export_to(spec, backend, target)


def copy_export(exported: Exported, out_pte: Path) -> Exported:
    """Copy an export (and its ETRecord) to where the user asked for it."""
    out_pte.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(exported.pte, out_pte)
    etrecord = None
    if exported.etrecord:
        etrecord = out_pte.with_suffix(".etrecord")
        shutil.copyfile(exported.etrecord, etrecord)
    return Exported(out_pte, etrecord, exported.backend, exported.source)
