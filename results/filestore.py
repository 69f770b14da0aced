"""The file store of rebirth before the database (one JSON file per run), read to import it.

Its layout under a store folder::

    FINGERPRINT/runs/0001.json           one stored run: the Profile and when, where and at which commit
    FINGERPRINT/runs/0003.json.damaged   a run file no reader could read, set aside by an earlier rebirth
    baselines/NAME/FINGERPRINT/0002.json a baseline's copy of a run (the same number)

Nothing here writes a run file; a file that cannot be read is set aside as it was then (renamed
``NNNN.json.damaged``) and named in one line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from rebirth.contract.errors import InputError
from rebirth.contract.stored import RUN_FILE, StoredRun

BASELINES = "baselines"
RUNS = "runs"
DAMAGED = ".damaged"
SET_ASIDE = re.compile(r"^(\d{4,})\.json\.damaged$")


def has_files(folder: Path) -> bool:
    """Whether ``folder`` holds a file store (any run file, set-aside run or baseline)."""
    return any(folder.glob(f"*/{RUNS}/*.json*")) or any(folder.glob(f"{BASELINES}/*/*/*.json"))


@dataclass
class FileStore:
    """What a file store holds, read once."""

    runs: list[StoredRun] = field(default_factory=list)
    baselines: dict[str, list[tuple[str, int, Path]]] = field(default_factory=dict)
    """Each baseline's runs: (fingerprint, number, its copy)."""
    damaged: list[tuple[str, int, str]] = field(default_factory=list)
    """(fingerprint, number, why) of each run file that could not be read now (set aside as it was read)."""
    before: list[tuple[str, int, str]] = field(default_factory=list)
    """(fingerprint, number, why) of each run file an earlier rebirth had set aside already."""

    @property
    def aside(self) -> list[tuple[str, int, str]]:
        """Every run file set aside, now or before: their numbers stay taken."""
        return self.damaged + self.before


def read_file_store(folder: Path, say: Callable[[str], None]) -> FileStore:
    """Every run and baseline of the file store in ``folder``; each file that cannot be read is set aside and
    named to ``say``."""
    found = FileStore()
    for path in sorted(folder.glob(f"*/{RUNS}/*")):
        if RUN_FILE.match(path.name):
            run = read_run(path, say)
            if run is not None:
                found.runs.append(run)
            else:
                found.damaged.append((path.parent.parent.name, int(path.stem), f"{path}: not a stored run, at import"))
        elif match := SET_ASIDE.match(path.name):
            found.before.append((path.parent.parent.name, int(match.group(1)), f"{path}: set aside before the import"))
    for path in sorted(folder.glob(f"{BASELINES}/[!.]*/*/*.json")):
        match = RUN_FILE.match(path.name)
        if match:
            found.baselines.setdefault(path.parent.parent.name, []).append(
                (path.parent.name, int(match.group(1)), path))
    return found


def read_run(path: Path, say: Callable[[str], None]) -> Optional[StoredRun]:
    """The run in ``path``, or None when it cannot be read (then it is set aside and named to ``say``)."""
    try:
        run = StoredRun.load(path)
        run.profile  # noqa: B018  # read now: the file may go
        return run
    except InputError as error:
        if path.exists():  # not one another reader set aside meanwhile
            say(f"{error}: {set_aside(path)}")
        return None


def set_aside(path: Path) -> str:
    """Rename the damaged file ``path`` to ``NNNN.json.damaged`` beside it; what became of it, in words."""
    target = path.with_name(path.name + DAMAGED)
    try:
        os.rename(path, target)
    except OSError as error:
        return f"left out (it cannot be moved aside: {error.strerror or error})"
    return f"set aside as {target}"


def baseline_folder_runs(folder: Path, say: Callable[[str], None]) -> Iterable[StoredRun]:
    """The runs of a file store's baseline folder (``baselines/NAME``) a user names by its path."""
    for path in sorted(folder.glob("*/*.json")):
        if RUN_FILE.match(path.name):
            run = read_run(path, say)
            if run is not None:
                yield run
