"""Write the programs a slimming chose, each once under its final name, and say what was written."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from rebirth.contract.slim import ETRECORD, PT2, PTE, OutputFile, program_name
from rebirth.models.lowering import Lowering
from rebirth.slimmer.steps import Program


def write_programs(programs: Sequence[Program], example_inputs: tuple, backend: str, outdir: Path,
                   source: str, lowering: Optional[Lowering] = None) -> tuple[OutputFile, ...]:
    """Write every program into ``outdir`` (``slim.pte`` or ``slim-ROLE.pte``, its ETRecord beside it, and its
    .pt2 where the program keeps one); the files written, in order. A program ``lowering``'s worker lowered
    already is copied from there; one it did not is lowered here.

    Raises:
        OSError: the folder cannot be written.
    """
    from rebirth.models.lowering import write_via

    files: list[OutputFile] = []
    for program in programs:
        key = id(program.model)
        worker = program.lowered is None and lowering is not None and lowering.written(key) is not None
        exported = program.export(example_inputs) if not worker or program.keep_pt2 else None
        write_via(lowering, key, program.lowered, exported, backend, outdir / program_name(program.role), source,
                  exported if program.keep_pt2 else None)
        kinds = (PT2, PTE, ETRECORD) if program.keep_pt2 else (PTE, ETRECORD)
        files += [OutputFile(program_name(program.role, kind), program.role, kind, program.about) for kind in kinds]
    return tuple(files)
