"""The result store: every Profile a farm run measured, by device fingerprint, and named baselines.

Layout under the store's root (``--store DIR``, else ``$REBIRTH_RESULTS``, else ``./rebirth-results``)::

    FINGERPRINT/runs/0001.json           one stored run: the Profile and when, where and at which commit
    FINGERPRINT/runs/0002.json           numbered per fingerprint, never rewritten
    FINGERPRINT/runs/0003.json.damaged   a run file no reader could read (truncated, foreign), set aside
    baselines/NAME/FINGERPRINT/0002.json the latest run of each (fingerprint, model) when NAME was saved

A fingerprint names what a result depends on besides the model: the product model, its build
and the runner (see ``device_fingerprint``). Runs are written to a temporary file, fsync'd, then
hard-linked to the first free number, so parallel writers (threads or processes) never share a
number and a killed writer leaves at most a ``.run-*.tmp`` file, which readers ignore. A baseline
is built in a temporary folder and renamed into place.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Optional

from rebirth.contract.errors import InputError
from rebirth.contract.files import fsync_folder, write_temp
from rebirth.contract.names import NAME_RULE, is_name
from rebirth.contract.profile import Profile
from rebirth.contract.stored import RUN_FILE, Key, StoredRun, key_of

ENV_VAR = "REBIRTH_RESULTS"
DEFAULT_ROOT = Path("rebirth-results")
BASELINES = "baselines"
RUNS = "runs"
DAMAGED = ".damaged"
"""The suffix a run file that cannot be read is set aside with."""
SET_ASIDE = re.compile(r"^(\d{4,})\.json\.damaged$")
STALE_TEMP_S = 3600

def store_root(explicit: Optional[Path] = None) -> Path:
    """The store's root: ``explicit``, else ``$REBIRTH_RESULTS``, else ``./rebirth-results``."""
    if explicit is not None:
        return explicit
    named = os.environ.get(ENV_VAR)
    return Path(named).expanduser() if named else DEFAULT_ROOT


def current_commit(cwd: Optional[Path] = None) -> Optional[str]:
    """``git rev-parse HEAD`` in ``cwd`` (default: the working directory); None outside a git checkout."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def save_run(profile: Profile, store: Path, commit: Optional[str] = None, batch: Optional[str] = None,
             time_run: Optional[str] = None) -> Path:
    """Store ``profile`` as the next numbered run of its device fingerprint; ``batch`` names the farm run
    it is part of (its phones of one fingerprint are then all judged, not only the last stored); ``time_run``
    is when it ran (ISO 8601, UTC; default: now).

    Returns:
        The run file, ``STORE/FINGERPRINT/runs/NNNN.json``.

    Raises:
        InputError: the store cannot be written.
    """
    fingerprint, key = key_of(profile)
    time_now = time_run or datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    document = StoredRun(Path(), 0, fingerprint, key, profile.device.name, commit, time_now, profile,
                         batch).to_dict()
    runs = store / fingerprint / RUNS
    try:
        runs.mkdir(parents=True, exist_ok=True)
        _prune_stale_temps(runs)
        return _link_next(write_temp(runs, json.dumps(document, indent=1, allow_nan=False), prefix=".run-"), runs)
    except OSError as error:
        raise InputError(f"{store}: cannot store the run ({error.strerror or error})") from None


def _link_next(temp: Path, runs: Path) -> Path:
    """Hard-link ``temp`` to the first free run number, then remove it: a number is never taken twice."""
    try:
        number = max(_run_numbers(runs), default=0) + 1
        while True:
            target = runs / f"{number:04d}.json"
            try:
                os.link(temp, target)
            except FileExistsError:
                number += 1
                continue
            fsync_folder(runs)
            return target
    finally:
        temp.unlink()


def _run_numbers(runs: Path) -> Iterable[int]:
    for name in os.listdir(runs):
        match = RUN_FILE.match(name) or SET_ASIDE.match(name)
        if match:
            yield int(match.group(1))


def _prune_stale_temps(folder: Path) -> None:
    """Remove temporary files that a killed writer left more than an hour ago."""
    for path in folder.glob(".*.tmp"):
        try:
            if time.time() - path.stat().st_mtime > STALE_TEMP_S:
                path.unlink()
        except FileNotFoundError:
            pass  # another writer's, finished meanwhile


def list_runs(store: Path, device: Optional[str] = None, model: Optional[str] = None,
              say: Optional[Callable[[str], None]] = None) -> list[StoredRun]:
    """Every stored run, by fingerprint then number; ``device`` (a device name or a fingerprint) and
    ``model`` (a model key, or the model as named without the backend) keep only matching runs. A run file that
    cannot be read (truncated, foreign) is set aside (``set_aside``) and named in one line to ``say`` (standard
    error by default): every other run stays usable."""
    runs = _readable(sorted(path for path in store.glob(f"*/{RUNS}/*.json") if RUN_FILE.match(path.name)), say)
    runs = [run for run in runs if _matches(run, device, model)]
    return sorted(runs, key=lambda run: (run.fingerprint, run.number))


def _readable(paths: Iterable[Path], say: Optional[Callable[[str], None]]) -> list[StoredRun]:
    runs = []
    for path in paths:
        try:
            runs.append(StoredRun.load(path))
        except InputError as error:
            if path.exists():  # not one another reader set aside meanwhile
                (say or _to_stderr)(f"{error}: {set_aside(path)}")
    return runs


def set_aside(path: Path) -> str:
    """Rename the damaged file ``path`` to ``NNNN.json.damaged`` beside it, out of every later read (its number
    stays taken); what became of it, in words."""
    target = path.with_name(path.name + DAMAGED)
    try:
        os.rename(path, target)
    except OSError as error:
        return f"left out (it cannot be moved aside: {error.strerror or error})"
    return f"set aside as {target}"


def _to_stderr(text: str) -> None:
    print(f"rebirth: {text}", file=sys.stderr)


def _matches(run: StoredRun, device: Optional[str], model: Optional[str]) -> bool:
    if device is not None and device not in (run.device, run.fingerprint):
        return False
    return model is None or model in (run.model_key, run.model_key.rpartition("@")[0])


def latest_runs(runs: Iterable[StoredRun]) -> list[StoredRun]:
    """The run with the highest number of each (fingerprint, model key)."""
    latest: dict[Key, StoredRun] = {}
    for run in runs:
        if run.key not in latest or run.number > latest[run.key].number:
            latest[run.key] = run
    return sorted(latest.values(), key=lambda run: run.key)


def save_baseline(store: Path, name: str, runs: Optional[Iterable[StoredRun]] = None, force: bool = False) -> Path:
    """Copy the latest run of each (fingerprint, model) of ``runs`` (default: the whole store) into
    ``STORE/baselines/NAME``, all at once.

    Raises:
        InputError: a bad name, no runs, or a baseline of that name exists and ``force`` is off.
    """
    if not is_name(name):
        raise InputError(f"{name!r} cannot name a baseline ({NAME_RULE})")
    chosen = latest_runs(list_runs(store) if runs is None else runs)
    if not chosen:
        raise InputError(f"{store}: no stored runs to make baseline {name!r} of (rebirth farm run stores them)")
    target = store / BASELINES / name
    if target.exists() and not force:
        raise InputError(f"{target}: baseline {name!r} exists; pass --force to replace it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _swap_in(_build_baseline(target.parent, name, chosen), target, force)
    except OSError as error:
        raise InputError(f"{target}: cannot write the baseline ({error.strerror or error})") from None
    return target


def _build_baseline(parent: Path, name: str, runs: list[StoredRun]) -> Path:
    """A complete baseline in a hidden temporary folder of ``parent``."""
    folder = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent))
    try:
        for run in runs:
            copy = folder / run.fingerprint / run.path.name
            copy.parent.mkdir(exist_ok=True)
            shutil.copyfile(run.path, copy)
            with open(copy, "rb") as handle:
                os.fsync(handle.fileno())
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _swap_in(built: Path, target: Path, force: bool) -> None:
    """Rename ``built`` to ``target``; with ``force`` the old ``target`` goes, after the new one is in."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}.tmp") if force and target.exists() else None
    try:
        if old:
            os.rename(target, old)
        os.rename(built, target)
    except OSError as error:
        shutil.rmtree(built, ignore_errors=True)
        if old and not target.exists():
            os.rename(old, target)
        if error.errno in (errno.EEXIST, errno.ENOTEMPTY):  # another save of that name won the race
            raise InputError(f"{target}: baseline {target.name!r} exists; pass --force to replace it") from None
        raise
    if old:
        shutil.rmtree(old)
    fsync_folder(target.parent)


def load_baseline(store: Path, name_or_path: str | os.PathLike) -> dict[Key, Profile]:
    """A baseline's Profiles by ``key_of``: ``name_or_path`` is a baseline's name in the store or its folder.

    Raises:
        InputError: no such baseline (a damaged file in it is set aside, as by ``list_runs``).
    """
    folder = Path(name_or_path)
    if not folder.is_dir():
        folder = store / BASELINES / str(name_or_path)
    if not folder.is_dir():
        saved = sorted(path.name for path in (store / BASELINES).glob("[!.]*") if path.is_dir())
        hint = f"baselines: {', '.join(saved)}" if saved else "save one with rebirth baseline save NAME"
        raise InputError(f"no baseline {str(name_or_path)!r} in {store}; {hint}")
    runs = _readable(sorted(path for path in folder.glob("*/*.json") if RUN_FILE.match(path.name)), None)
    return {key_of(run.profile): run.profile for run in runs}


def baseline_members(store: Path) -> dict[tuple[str, int], tuple[str, ...]]:
    """The names of the baselines that hold each stored run, by (fingerprint, number), from the files' names
    alone (a baseline's copy keeps its run's number)."""
    members: dict[tuple[str, int], list[str]] = {}
    for path in sorted((store / BASELINES).glob("[!.]*/*/*.json")):
        match = RUN_FILE.match(path.name)
        if match:
            members.setdefault((path.parent.name, int(match.group(1))), []).append(path.parent.parent.name)
    return {key: tuple(names) for key, names in members.items()}


def load_result(path: Path) -> Profile:
    """The Profile of a Profile JSON file or of a stored run file.

    Raises:
        InputError: the file is neither.
    """
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a rebirth profile or stored run ({error})") from None
    return StoredRun.load(path).profile if isinstance(data, dict) and "profile" in data else Profile.load(path)


def baseline_profiles(store: Path, name_or_path: str) -> dict[Key, Profile]:
    """The baseline's Profiles by ``key_of``: a saved baseline (its name or folder) or one JSON file."""
    path = Path(name_or_path)
    if path.is_file():
        profile = load_result(path)
        return {key_of(profile): profile}
    return load_baseline(store, name_or_path)


def runs_to_judge(runs: Iterable[StoredRun]) -> list[StoredRun]:
    """The latest run of each (fingerprint, model key), with the other runs of the farm run that stored it:
    a farm run on four phones of one model is judged on four phones, not on the one stored last."""
    runs = list(runs)
    latest = latest_runs(runs)
    chosen, batches = {run.path for run in latest}, {(run.key, run.batch) for run in latest if run.batch}
    return sorted([run for run in runs if run.path in chosen or (run.key, run.batch) in batches],
                  key=lambda run: (run.key, run.number))


def results_to_judge(paths: Iterable[Path], store: Path) -> list[tuple[Key, Profile]]:
    """The Profiles to judge with their ``key_of``: files, stores (the latest farm run of each key), or the
    default store. One key may come with several Profiles: one per phone of that fingerprint.

    Raises:
        InputError: a path that does not exist or is not a result.
    """
    profiles = []
    for path in list(paths) or [store]:
        if path.is_dir():
            profiles += [run.profile for run in runs_to_judge(list_runs(path))]
        elif path.is_file():
            profiles.append(load_result(path))
        else:
            raise InputError(f"{path}: no such file or folder")
    chosen: dict[tuple[Key, str], Profile] = {}  # one per key and device: a later file replaces an earlier one
    for profile in profiles:
        chosen[(key_of(profile), profile.device.name)] = profile
    return [(key, profile) for (key, _), profile in chosen.items()]
