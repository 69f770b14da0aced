"""The result store: every Profile a farm run measured, numbered per device fingerprint, and named baselines.

Where it is (``--store``, else ``$REBIRTH_RESULTS``, else ``./rebirth-results``):

- a folder: the SQLite store ``FOLDER/rebirth.sqlite`` (the default). A file store an earlier rebirth wrote
  there (one JSON file per run) is imported into it on first use, every run accounted for;
- a ``.sqlite``/``.db`` file, or ``sqlite:///PATH``: that SQLite store;
- ``postgresql://USER@HOST:PORT/DATABASE``: a team's shared store on a PostgreSQL server (``rebirth[postgres]``).

A fingerprint names what a result depends on besides the model: the product model, its build and the runner
(see ``device_fingerprint``). The store itself is ``results.database``'s.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Optional, Union

from rebirth.contract.errors import InputError
from rebirth.contract.profile import Profile
from rebirth.contract.stored import Key, StoredRun, key_of
from rebirth.results.database import SQLITE_FILE, DatabaseStore, open_postgres, open_sqlite
from rebirth.results.filestore import baseline_folder_runs, has_files, read_file_store, read_run

ENV_VAR = "REBIRTH_RESULTS"
DEFAULT_ROOT = Path("rebirth-results")
SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")

StoreLike = Union[DatabaseStore, str, "os.PathLike[str]", None]
Say = Callable[[str], None]


def store_root(explicit: Optional[str | os.PathLike] = None) -> str:
    """Where the store is: ``explicit``, else ``$REBIRTH_RESULTS``, else ``./rebirth-results``."""
    if explicit is not None and str(explicit):
        return str(explicit)
    named = os.environ.get(ENV_VAR)
    return os.path.expanduser(named) if named else str(DEFAULT_ROOT)


def is_url(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def open_store(location: StoreLike = None, say: Optional[Say] = None) -> DatabaseStore:
    """The store at ``location`` (see the module's doc): one that does not exist reads as empty and is made by its
    first write; a file store in a store folder is imported on first use. Close it when done (it is a context
    manager).

    Raises:
        InputError: it cannot be opened, reached or read.
    """
    if isinstance(location, DatabaseStore):
        return location
    where = store_root(location)
    if is_url(where):
        return open_postgres(where)
    if where.startswith("sqlite:///"):
        return open_sqlite(Path(where.removeprefix("sqlite://")))
    path = Path(where)
    if path.suffix in SQLITE_SUFFIXES or path.is_file():
        return open_sqlite(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: not a result store")
    store = open_sqlite(path / SQLITE_FILE)
    try:
        if has_files(path):
            import_file_store(path, store, say=say, first_use=True)
    except BaseException:
        store.close()
        raise
    return store


@contextmanager
def using(location: StoreLike, say: Optional[Say] = None) -> Iterator[DatabaseStore]:
    """The store at ``location``, closed after (a store passed in stays open)."""
    if isinstance(location, DatabaseStore):
        yield location
        return
    store = open_store(location, say)
    try:
        yield store
    finally:
        store.close()


def current_commit(cwd: Optional[Path] = None) -> Optional[str]:
    """``git rev-parse HEAD`` in ``cwd`` (default: the working directory); None outside a git checkout."""
    return _git(["rev-parse", "HEAD"], cwd)


def current_branch(cwd: Optional[Path] = None) -> Optional[str]:
    """The branch being built: CI's own name for it where it gives one (a detached checkout has no branch),
    else git's; None outside a git checkout."""
    for variable in ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BRANCH_NAME"):
        if os.environ.get(variable):
            return os.environ[variable]
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
    return None if branch in (None, "HEAD") else branch


def _git(arguments: list[str], cwd: Optional[Path]) -> Optional[str]:
    try:
        done = subprocess.run(["git", *arguments], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def save_run(profile: Profile, store: StoreLike = None, commit: Optional[str] = None, batch: Optional[str] = None,
             time_run: Optional[str] = None, branch: Optional[str] = None) -> StoredRun:
    """Store ``profile`` as the next numbered run of its device fingerprint; ``batch`` names the farm run it is
    part of (its phones of one fingerprint are then all judged, not only the last stored); ``time_run`` is when it
    ran (ISO 8601, UTC; default: now).

    Raises:
        InputError: the store cannot be written.
    """
    with using(store) as opened:
        return opened.save_run(profile, commit, batch, time_run, branch)


def list_runs(store: StoreLike = None, device: Optional[str] = None, model: Optional[str] = None,
              say: Optional[Say] = None, last: Optional[int] = None) -> list[StoredRun]:
    """Every stored run (or the latest ``last``), by fingerprint then number; ``device`` (a device name or a
    fingerprint) and ``model`` (a model key, or the model as named without the backend) keep only matching runs.
    A run that cannot be read is set aside and named in one line to ``say`` (standard error by default)."""
    with using(store, say) as opened:
        return opened.runs(device, model, say, last)


def latest_runs(runs: Iterable[StoredRun]) -> list[StoredRun]:
    """The run with the highest number of each (fingerprint, model key)."""
    latest: dict[Key, StoredRun] = {}
    for run in runs:
        if run.key not in latest or run.number > latest[run.key].number:
            latest[run.key] = run
    return sorted(latest.values(), key=lambda run: run.key)


def save_baseline(store: StoreLike, name: str, runs: Optional[Iterable[StoredRun]] = None,
                  force: bool = False) -> int:
    """Name the latest run of each (fingerprint, model) of ``runs`` (default: the whole store) baseline ``name``,
    all at once; how many runs it holds.

    Raises:
        InputError: a bad name, no runs, or a baseline of that name exists and ``force`` is off.
    """
    with using(store) as opened:
        return opened.save_baseline(name, latest_runs(opened.runs() if runs is None else runs), force)


def load_baseline(store: StoreLike, name_or_path: str | os.PathLike, say: Optional[Say] = None,
                  device: Optional[str] = None, model: Optional[str] = None) -> dict[Key, Profile]:
    """A baseline's Profiles by ``key_of``: a baseline's name in the store, or the folder of a file store's
    baseline (``rebirth-results/baselines/NAME``).

    Raises:
        InputError: no such baseline.
    """
    folder = Path(name_or_path)
    if folder.is_dir() and not (folder / SQLITE_FILE).exists():
        return {key_of(run.profile): run.profile for run in baseline_folder_runs(folder, say or _to_stderr)}
    with using(store, say) as opened:
        return opened.baseline(str(name_or_path), say, device, model)


def baseline_members(store: StoreLike) -> dict[tuple[str, int], tuple[str, ...]]:
    """The names of the baselines that hold each stored run, by (fingerprint, number)."""
    with using(store) as opened:
        return opened.baseline_members()


def load_result(path: Path) -> Profile:
    """The Profile of a Profile JSON file or of a stored run file.

    Raises:
        InputError: the file is neither.
    """
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a rebirth profile or stored run ({error})") from None
    return StoredRun.load(path).profile if isinstance(data, dict) and "profile" in data else Profile.load(path)


def baseline_profiles(store: StoreLike, name_or_path: str, device: Optional[str] = None,
                      model: Optional[str] = None) -> dict[Key, Profile]:
    """The baseline's Profiles by ``key_of``: a saved baseline (its name, or a file store's baseline folder) or one
    JSON file."""
    path = Path(name_or_path)
    if path.is_file():
        profile = load_result(path)
        return {key_of(profile): profile}
    return load_baseline(store, name_or_path, device=device, model=model)


def runs_to_judge(runs: Iterable[StoredRun]) -> list[StoredRun]:
    """The latest run of each (fingerprint, model key), with the other runs of the farm run that stored it:
    a farm run on four phones of one model is judged on four phones, not on the one stored last."""
    runs = list(runs)
    latest = latest_runs(runs)
    chosen, batches = {run.where for run in latest}, {(run.key, run.batch) for run in latest if run.batch}
    return sorted([run for run in runs if run.where in chosen or (run.key, run.batch) in batches],
                  key=lambda run: (run.key, run.number))


def results_to_judge(paths: Sequence[Path], store: StoreLike, device: Optional[str] = None,
                     model: Optional[str] = None) -> list[tuple[Key, Profile]]:
    """The Profiles to judge with their ``key_of``: files, stores (the latest farm run of each key), or the
    default store (only ``device``'s and ``model``'s runs of a store, if given). One key may come with several
    Profiles: one per phone of that fingerprint.

    Raises:
        InputError: a path that does not exist or is not a result.
    """
    profiles = []
    if not paths:
        with using(store) as opened:
            profiles += [run.profile for run in runs_to_judge(opened.runs(device, model))]
    for path in map(Path, paths):
        if path.is_dir() or (path.suffix in SQLITE_SUFFIXES and path.is_file()):
            with using(path) as opened:
                profiles += [run.profile for run in runs_to_judge(opened.runs(device, model))]
        elif path.is_file():
            profiles.append(load_result(path))
        else:
            raise InputError(f"{path}: no such file or folder")
    chosen: dict[tuple[Key, str], Profile] = {}  # one per key and device: a later file replaces an earlier one
    for profile in profiles:
        chosen[(key_of(profile), profile.device.name)] = profile
    return [(key, profile) for (key, _), profile in chosen.items()]


def import_file_store(folder: Path, store: DatabaseStore, say: Optional[Say] = None,
                      first_use: bool = False) -> Optional[str]:
    """Import the file store in ``folder`` into ``store``, once: every run keeps its fingerprint and number
    (a run of another store already at that number takes the next free one), every baseline its runs.
    What was imported, in one line (also said to ``say``); None if it was imported before.

    Raises:
        InputError: the store cannot be written.
    """
    marker = f"imported:{folder.resolve()}"
    if store.meta(marker) is not None:
        return None
    tell = say or _to_stderr
    found = read_file_store(folder, tell)
    present = {(run.fingerprint, run.number) for run in found.runs}
    for members in found.baselines.values():  # a baseline's copy of a run file that is gone is that run
        for fingerprint, number, path in members:
            if (fingerprint, number) not in present:
                copy = read_run(path, tell)
                if copy is not None and copy.fingerprint == fingerprint:
                    found.runs.append(StoredRun.of(copy.where, number, copy.profile, copy.device, copy.commit,
                                                   copy.time, copy.batch, copy.branch))
                    present.add((fingerprint, number))
    counts = store.import_runs(found.runs, found.baselines, found.aside, marker)
    if counts is None:
        return None  # another process imported it meanwhile
    imported, already, renumbered, baselines, taken = counts
    total = len(found.runs) + len(found.aside)
    parts = [f"{imported} run{'s' if imported != 1 else ''}"]
    if renumbered:
        parts.append(f"{renumbered} of them under a new number (theirs was taken)")
    if already:
        parts.append(f"{already} in it already")
    if found.damaged:
        parts.append(f"{len(found.damaged)} set aside as damaged (named above)")
    if found.before:
        parts.append(f"{len(found.before)} set aside before")
    line = (f"imported the file store in {folder} into {store.location}: {total} run file{'s' if total != 1 else ''}: "
            f"{'; '.join(parts)}; {len(baselines)} baseline{'s' if len(baselines) != 1 else ''}"
            + (f" ({', '.join(taken)} named already in the store: kept the store's)" if taken else "")
            + ("; the files stay as they were, and rebirth reads the database from now on" if first_use else ""))
    tell(line)
    return line


def _to_stderr(text: str) -> None:
    print(f"rebirth: {text}", file=sys.stderr)
