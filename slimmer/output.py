"""Write the programs a slimming chose, each once under its final name, and say what was written."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from rebirth.contract.quiet import quiet
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
    import torch

    from rebirth.models import lower, write_lowered
    from rebirth.models.lowering import copy_written

    files: list[OutputFile] = []
    for program in programs:
        written = lowering.written(id(program.model)) if lowering is not None and program.lowered is None else None
        exported = program.exported
        if exported is None and (written is None or program.keep_pt2):
            with quiet():
                exported = torch.export.export(program.model, example_inputs)
        out = outdir / program_name(program.role)
        if written is not None:
            copy_written(written, out, source, backend, exported if program.keep_pt2 else None)
        else:
            lowered = program.lowered if program.lowered is not None else lower(exported, backend)
            write_lowered(lowered, backend, out, source, exported if program.keep_pt2 else None)
        kinds = (PT2, PTE, ETRECORD) if program.keep_pt2 else (PTE, ETRECORD)
        files += [OutputFile(program_name(program.role, kind), program.role, kind, program.about) for kind in kinds]
    return tuple(files)
