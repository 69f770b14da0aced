"""Devices that run rebirth's runner: the host (``local``) and Android phones over ADB."""

from devices.base import (Device, DeviceDescription, DeviceState, CoreState, ProgressCallback,
                          RunRequest, RunResult)
from devices.errors import (ConfigError, DeviceError, ModelRejectedError, RunnerError, UnauthorizedError,
                            UnknownDeviceError, UnreachableError)
from devices.registry import DEFAULT_DEVICE, open_device

__all__ = [
    "ConfigError", "CoreState", "Device", "DeviceDescription", "DeviceError", "DeviceState", "DEFAULT_DEVICE",
    "ModelRejectedError", "ProgressCallback", "RunRequest", "RunResult", "RunnerError", "UnauthorizedError",
    "UnknownDeviceError", "UnreachableError", "open_device",
]
