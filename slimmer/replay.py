"""A recorded plan replayed (``--plan FILE``): the steps a slim.json kept, made again in the order it made them,
whatever a new profile ranks first, each still learned and judged.

A slimming's choices follow its profile (which offers pay) and its judge (which are kept). Replaying the kept steps
of one run takes the profile out of it: the same merges, the same compressions at the same offers, and int8 where
it was made, each found on the model by its kind, layers and detail. What the judge decides is decided again,
so a replay on other data, or on a model that changed, refuses what is over the budget there; a step the model no
longer offers is recorded as skipped (``not_in_model``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rebirth.contract.errors import InputError
from rebirth.contract.slim import MergeRecord, Part, SlimRecord

Identity = tuple[str, tuple[str, ...], str]
"""What a step's offer is found by: its kind, its layers (module paths) and its detail."""


@dataclass(frozen=True)
class Replay:
    """The steps a recorded slimming kept, in order, and whether it made int8."""

    source: str
    """The slim.json replayed, as the user named it."""
    merges: tuple[MergeRecord, ...]
    int8: bool

    def made(self, kind: str) -> list[MergeRecord]:
        """The recorded steps of ``kind``, in the order they were made."""
        return [merge for merge in self.merges if merge.kind == kind]

    def merge_order(self, kinds: Iterable[str]) -> list[Identity]:
        """The recorded merges of ``kinds`` (a merge step's passes), in the order they were made."""
        wanted = set(kinds)
        return [(merge.kind, merge.layers, merge.detail) for merge in self.merges if merge.kind in wanted]

    def parts(self, kind: str) -> Optional[tuple[Part, ...]]:
        """The offers of the last recorded compression of ``kind``; None when the plan made none."""
        made = self.made(kind)
        return made[-1].parts if made else None


def load_replay(path: str | os.PathLike) -> Replay:
    """The plan a slim.json (or a folder holding one) recorded.

    Raises:
        InputError: no such file, or not a slim.json.
    """
    file = Path(path)
    if file.is_dir():
        file = file / "slim.json"
    try:
        record = SlimRecord.load(file)
    except InputError as error:
        raise InputError(f"--plan {path}: {error}") from None
    quantized = record.quantization
    return Replay(str(path), record.merges, bool(quantized and quantized.applied))
