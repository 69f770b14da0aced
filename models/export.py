"""Lower a model to a .pte and its ETRecord, for the portable runtime or XNNPACK: the one export path
every command uses, written atomically, and the cache of exports."""

from __future__ import annotations

import enum
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rebirth.contract.cache import cache_root
from rebirth.contract.errors import InputError
from rebirth.contract.quiet import quiet
from rebirth.models.sources import PTE, ModelSpec, fingerprint, load_exported, parse_spec


def import_heavy() -> None:
    """Import executorch's compiler and devtools once, with their import-time chatter silenced."""
    with quiet():
        import executorch.devtools
        import executorch.exir  # noqa: F401


class Backend(str, enum.Enum):
    """Backends a model can be lowered to; the values are the CLI's choices."""

    PORTABLE = "portable"
    XNNPACK = "xnnpack"


BACKENDS = tuple(backend.value for backend in Backend)


@dataclass(frozen=True)
class Exported:
    """A .pte on disk, its ETRecord if there is one, and how it was made."""

    pte: Path
    etrecord: Optional[Path]
    backend: str
    source: str


def lower(exported_program: Any, backend: Backend | str) -> Any:
    """``to_edge_transform_and_lower`` then ``to_executorch``, with an ETRecord."""
    from executorch.exir import to_edge_transform_and_lower

    partitioners = []
    if Backend(backend) is Backend.XNNPACK:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        partitioners = [XnnpackPartitioner()]
    with quiet():
        edge = to_edge_transform_and_lower(exported_program, partitioner=partitioners, generate_etrecord=True)
        return edge.to_executorch()


def write_program(exported_program: Any, backend: Backend | str, out_pte: Path, source: str,
                  keep_pt2: bool = False) -> Exported:
    """Lower ``exported_program`` and write ``out_pte`` with its ``.etrecord`` (and its ``.pt2`` with
    ``keep_pt2``) beside it; every file appears whole or not at all.

    Raises:
        OSError: the folder cannot be written.
    """
    program = lower(exported_program, backend)
    return write_lowered(program, backend, out_pte, source, exported_program if keep_pt2 else None)


def write_lowered(program: Any, backend: Backend | str, out_pte: Path, source: str,
                  exported_program: Any = None) -> Exported:
    """Write a lowered ``program`` (what ``lower`` returns) as ``out_pte`` with its ``.etrecord`` beside it, and
    ``exported_program`` as its ``.pt2`` when given; every file appears whole or not at all.

    Raises:
        OSError: the folder cannot be written.
    """
    import torch

    def write(staged: dict[str, Path]) -> None:
        staged["pte"].write_bytes(program.buffer)
        with quiet():
            program.get_etrecord().save(str(staged["etrecord"]))
            if exported_program is not None:
                torch.export.save(exported_program, str(staged["pt2"]))

    return Exported(out_pte, write_staged(out_pte, write)["etrecord"], Backend(backend).value, source)


def write_staged(out_pte: Path, write: Callable[[dict[str, Path]], None]) -> dict[str, Path]:
    """The files of one program, each kind (``pte``, ``etrecord``, ``pt2``) written by ``write`` to the staged path
    it is given in a folder beside ``out_pte``, then moved into place, the .pte last: every file appears whole or
    not at all, and a .pte there means the rest is there. Where each kind is now.

    Raises:
        OSError: the folder cannot be written.
    """
    out_pte.parent.mkdir(parents=True, exist_ok=True)
    targets = {"pte": out_pte, "etrecord": out_pte.with_suffix(".etrecord"), "pt2": out_pte.with_suffix(".pt2")}
    with tempfile.TemporaryDirectory(dir=out_pte.parent, prefix=".export-") as staging:
        staged = {kind: Path(staging) / f"model.{kind}" for kind in targets}
        write(staged)
        for kind in ("pt2", "etrecord", "pte"):
            if staged[kind].exists():
                os.replace(staged[kind], targets[kind])
    return targets


def export_to(spec: ModelSpec, backend: Backend | str, out_pte: Path) -> Exported:
    """Write ``out_pte`` and ``out_pte`` with suffix ``.etrecord`` for a model that is not a .pte yet.

    Raises:
        InputError: the spec is a .pte or cannot be exported.
        OSError: the folder cannot be written.
    """
    return write_program(load_exported(spec), backend, out_pte, spec.text)


def export_model(model: str, backend: Backend | str, out_pte: Path) -> Exported:
    """`rebirth export`: ``model`` (a .pt2, file.py:NAME or zoo:NAME) as ``out_pte`` and its .etrecord.

    Raises:
        InputError: a bad model argument, an output that is not a .pte, or a folder that cannot be written.
    """
    if out_pte.suffix != ".pte":
        raise InputError(f"{out_pte}: the output must end in .pte")
    spec = parse_spec(model)
    import_heavy()
    try:
        return export_to(spec, backend, out_pte)
    except OSError as error:
        raise InputError(f"{out_pte}: cannot write the export ({error.strerror or error})") from None


def cache_dir() -> Path:
    """Where exported models are cached."""
    return cache_root() / "exports"


def ensure_pte(spec: ModelSpec, backend: Backend | str, etrecord: Optional[Path] = None) -> Exported:
    """A .pte for ``spec``: the file itself for a .pte, else a cached export.

    For a .pte, the ETRecord is ``etrecord`` if given, else ``NAME.etrecord`` beside it.

    Raises:
        InputError: an explicit ETRecord that does not exist, or a model that cannot be exported.
    """
    if spec.kind == PTE:
        assert spec.path is not None
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


def probe_pte() -> Path:
    """A tiny portable .pte that any executor_runner can run (`rebirth devices check`); exported once,
    then cached."""
    spec = parse_spec(f"{Path(__file__).with_name('probe.py')}:probe")
    import_heavy()
    return ensure_pte(spec, Backend.PORTABLE).pte
