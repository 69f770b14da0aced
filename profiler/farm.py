"""`rebirth farm run`: export the model once, read it once, profile it on every device at once, and store
each Profile as soon as its device is done."""

from __future__ import annotations

import datetime
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

from rebirth.contract.errors import DeviceError, InputError
from rebirth.contract.profile import Profile
from rebirth.devices import Outcome, fan_out, open_device
from rebirth.profiler.measure import ProfileOptions, Program, prepare, profile_program


@dataclass(frozen=True)
class FarmRequest:
    model: str
    targets: tuple[str, ...]
    """Device names, ``host:port`` or ``adb:SERIAL`` (see ``devices.resolve_targets``)."""
    store: Path
    backend: str = "xnnpack"
    warmup: Optional[int] = None
    iterations: Optional[int] = None
    threads: Optional[int] = None
    etrecord: Optional[Path] = None


@dataclass(frozen=True)
class Stored:
    """One device's Profile and the run file the store keeps it in."""

    profile: Profile
    path: Path


FarmRun = Outcome[Stored]
"""One device's part of a farm run: its stored Profile, or the one-line reason it failed."""


class FarmListener(Protocol):
    """What a farm run tells its view, from the devices' worker threads."""

    def stage(self, device: str, stage: str) -> None: ...

    def progress(self, device: str, stage: str, done: int, total: int) -> None: ...

    def finished(self, run: Outcome[Any]) -> None:
        """A device's work ended (its result, or why it failed)."""


def run_farm(request: FarmRequest, listener: FarmListener) -> list[FarmRun]:
    """Profile ``request.model`` on every target in parallel and store each result.

    Returns:
        One FarmRun per target, in order; a device that failed carries its one-line reason.

    Raises:
        InputError: the model cannot be read or exported (before any device is used).
        ConfigError: the inventory is wrong.
    """
    from rebirth.results import current_commit, save_run

    program = prepare(request.model, request.backend, request.etrecord)
    commit = current_commit()
    batch = f"{datetime.datetime.now(datetime.UTC):%Y%m%dT%H%M%S}-{os.getpid()}-{secrets.token_hex(3)}"
    options = ProfileOptions(backend=request.backend, warmup=request.warmup, iterations=request.iterations,
                             threads=request.threads)

    def job(device: str) -> Stored:
        record = _profile_on(device, program, options, listener)
        listener.stage(device, "store")
        return Stored(record, save_run(record, request.store, commit, batch))

    return fan_out(request.targets, job, expected=(DeviceError, InputError), on_done=listener.finished)


def _profile_on(name: str, program: Program, options: ProfileOptions, listener: FarmListener) -> Profile:
    """The program profiled on one device through its own connection."""
    with open_device(name) as device:
        return profile_program(program, device, options,
                               progress=lambda stage, done, total: listener.progress(name, stage, done, total),
                               stage=lambda stage: listener.stage(name, stage))
