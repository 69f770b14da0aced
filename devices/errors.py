"""Typed errors of the device layer."""

from __future__ import annotations

from typing import Optional


class DeviceError(Exception):
    """A device command failed: carries the device, the step, the command, exit code and output."""

    def __init__(self, message: str, *, device: str = "", step: str = "", command: str = "",
                 exit_code: Optional[int] = None, output: str = ""):
        super().__init__(message)
        self.device, self.step, self.command = device, step, command
        self.exit_code, self.output = exit_code, output


class UnknownDeviceError(DeviceError):
    """The user named a device that is not configured (a user error)."""


class RunnerError(DeviceError):
    """The runner process failed on the device."""


class ModelRejectedError(RunnerError):
    """The runtime refused the model (bad program, missing operator): the user's input."""
