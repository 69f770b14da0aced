"""Devices that run rebirth's runner: the host (``local``) and Android phones over ADB; listing,
describing and checking them; an emulated phone; and fanning work out over a farm of them.

Light names only: nothing here imports torch or executorch. Each name is imported when it is first used, so
that importing one module of the package (the runner, which the emulated phone starts for every run, or the
run log) does not import the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as mypy and readers see them
    from rebirth.devices.base import Device, ProbeModel, ProgressCallback, RunDefaults, RunRequest, RunResult
    from rebirth.devices.farm import Outcome, fan_out, resolve_targets
    from rebirth.devices.registry import DEFAULT_DEVICE, open_device
    from rebirth.devices.runlog import RunLog
    from rebirth.devices.status import (
        EmulatorOptions,
        build_runner,
        check_device,
        device_report,
        list_devices,
        start_emulator,
    )

_WHERE = {
    "Device": "base", "ProbeModel": "base", "ProgressCallback": "base", "RunDefaults": "base",
    "RunRequest": "base", "RunResult": "base",
    "Outcome": "farm", "fan_out": "farm", "resolve_targets": "farm",
    "DEFAULT_DEVICE": "registry", "open_device": "registry",
    "RunLog": "runlog",
    "EmulatorOptions": "status", "build_runner": "status", "check_device": "status", "device_report": "status",
    "list_devices": "status", "start_emulator": "status",
}
__all__ = [
    "DEFAULT_DEVICE", "Device", "EmulatorOptions", "Outcome", "ProbeModel", "ProgressCallback", "RunDefaults",
    "RunLog", "RunRequest", "RunResult", "build_runner", "check_device", "device_report", "fan_out", "list_devices",
    "open_device", "resolve_targets", "start_emulator",
]
assert sorted(__all__) == sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'rebirth.devices' has no attribute {name!r}")
    return getattr(importlib.import_module(f"rebirth.devices.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return __all__
