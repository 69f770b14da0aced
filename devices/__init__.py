"""Devices that run rebirth's runner: the host (``local``) and Android phones over ADB; listing,
describing and checking them; an emulated phone; and fanning work out over a farm of them.

Light names only: nothing here imports torch or executorch.
"""

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

__all__ = [
    "DEFAULT_DEVICE", "Device", "EmulatorOptions", "Outcome", "ProbeModel", "ProgressCallback", "RunDefaults",
    "RunLog", "RunRequest", "RunResult", "build_runner", "check_device", "device_report", "fan_out", "list_devices",
    "open_device", "resolve_targets", "start_emulator",
]
