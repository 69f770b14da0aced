"""Write the programs a slimming chose, each once under its final name, and say what was written."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rebirth.contract.quiet import quiet
from rebirth.contract.slim import ETRECORD, PT2, PTE, OutputFile, program_name
from rebirth.slimmer.steps import Program


def write_programs(programs: Sequence[Program], example_inputs: tuple, backend: str, outdir: Path,
                   source: str) -> tuple[OutputFile, ...]:
    """Write every program into ``outdir`` (``slim.pte`` or ``slim-ROLE.pte``, its ETRecord beside it, and its
    .pt2 where the program keeps one); the files written, in order.

    Raises:
        OSError: the folder cannot be written.
    """
    import torch

    from rebirth.models import lower, write_lowered

    files: list[OutputFile] = []
    for program in programs:
        exported = program.exported
        if exported is None:
            with quiet():
                exported = torch.export.export(program.model, example_inputs)
        lowered = program.lowered if program.lowered is not None else lower(exported, backend)
        write_lowered(lowered, backend, outdir / program_name(program.role), source,
                      exported if program.keep_pt2 else None)
        kinds = (PT2, PTE, ETRECORD) if program.keep_pt2 else (PTE, ETRECORD)
        files += [OutputFile(program_name(program.role, kind), program.role, kind, program.about) for kind in kinds]
    return tuple(files)
