"""Devices that run rebirth's runner: the host (``local``) and, later, phones over ADB."""

from devices.base import (Device, DeviceDescription, DeviceState, CoreState, ProgressCallback,
                          RunRequest, RunResult)
from devices.errors import DeviceError, ModelRejectedError, RunnerError, UnknownDeviceError
from devices.registry import DEFAULT_DEVICE, open_device

__all__ = [
    "CoreState", "Device", "DeviceDescription", "DeviceError", "DeviceState", "DEFAULT_DEVICE",
    "ModelRejectedError", "ProgressCallback", "RunRequest", "RunResult", "RunnerError",
    "UnknownDeviceError", "open_device",
]
