"""The wiring of `rebirth farm run`: export the model once, profile it on every device at once,
store each Profile as soon as its device is done."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Protocol

from profiler.record import Profile


@dataclass(frozen=True)
class FarmRequest:
    model: str
    targets: tuple[str, ...]
    """Device names, ``host:port`` or ``adb:SERIAL`` (see ``devices.farm.resolve_targets``)."""
    store: Path
    backend: str = "xnnpack"
    warmup: Optional[int] = None
    iterations: Optional[int] = None
    threads: Optional[int] = None
    etrecord: Optional[Path] = None


@dataclass(frozen=True)
class DeviceRun:
    """One device's part of a farm run: its Profile and stored run file, or why it failed."""

    device: str
    profile: Optional[Profile] = None
    stored: Optional[Path] = None
    error: Optional[str] = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class FarmListener(Protocol):
    """What a farm run tells its view, from the devices' worker threads."""

    def stage(self, device: str, stage: str) -> None: ...

    def progress(self, device: str, stage: str, done: int, total: int) -> None: ...

    def finished(self, run: DeviceRun) -> None: ...


def run_farm(request: FarmRequest, listener: FarmListener) -> list[DeviceRun]:
    """Profile ``request.model`` on every target in parallel and store each result.

    Returns:
        One DeviceRun per target, in order; a device that failed carries its one-line reason.

    Raises:
        profiler.InputError: the model cannot be read or exported (before any device is used).
        devices.ConfigError: the inventory is wrong.
    """
    from devices.errors import DeviceError
    from devices.farm import fan_out
    from profiler.errors import InputError
    from reports.store import current_commit, save_run

    exported, source = export_once(request)
    commit = current_commit()

    def job(device: str) -> tuple[Profile, Path]:
        measured = profile_on(device, request, exported, listener)
        record = replace(measured, model=replace(measured.model, source=source))
        listener.stage(device, "store")
        return record, save_run(record, request.store, commit)

    def done(outcome) -> None:
        listener.finished(_device_run(outcome))

    outcomes = fan_out(request.targets, job, expected=(DeviceError, InputError), on_done=done)
    return [_device_run(outcome) for outcome in outcomes]


def export_once(request: FarmRequest):
    """The .pte every device runs (exported here once when the model is not one) and the model's name.

    Raises:
        profiler.InputError: the model argument, file or export is wrong.
    """
    from profiler import pte
    from profiler.export import ensure_pte
    from profiler.quiet import import_heavy
    from profiler.sources import PTE, parse_spec

    spec = parse_spec(request.model)
    if spec.kind == PTE:
        pte.check_pte(spec.path)
    import_heavy()
    exported = ensure_pte(spec, request.backend, request.etrecord)
    pte.load_program(exported.pte)
    return exported, spec.text


def profile_on(device: str, request: FarmRequest, exported, listener: FarmListener) -> Profile:
    """The exported .pte profiled on one device through its own connection."""
    from rebirth.app import ProfileOptions, profile

    options = ProfileOptions(device, request.backend, request.warmup, request.iterations, request.threads,
                             exported.etrecord)
    return profile(str(exported.pte), options,
                   progress=lambda stage, done, total: listener.progress(device, stage, done, total),
                   stage=lambda stage: listener.stage(device, stage))


def _device_run(outcome) -> DeviceRun:
    profile, stored = outcome.result or (None, None)
    return DeviceRun(outcome.device, profile, stored, outcome.error, outcome.seconds)
