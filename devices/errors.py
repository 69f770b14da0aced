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


class ConfigError(UnknownDeviceError):
    """The device inventory is wrong (a user error)."""


class UnreachableError(DeviceError):
    """The phone cannot be reached or stopped answering."""


class UnauthorizedError(UnreachableError):
    """The phone answers but has not authorized this computer's ADB key."""


def runner_failure(device: str, command: str, code: int, output: str) -> RunnerError:
    """The error for a runner that exited with ``code``: the model's fault or the device's."""
    from devices import runlog

    missing = runlog.missing_operators(output)
    if missing:
        return ModelRejectedError(
            f"the model needs operator{'s' if len(missing) > 1 else ''} {', '.join(missing)}, "
            "which the runtime was not built with", device=device, step="run", command=command,
            exit_code=code, output=output)
    if code == 3:
        return ModelRejectedError(f"the runtime could not load the model: {last_error(output)}", device=device,
                                  step="load", command=command, exit_code=code, output=output)
    return RunnerError(f"the runner failed on {device} (exit {code}): {last_error(output)}", device=device,
                       step="run", command=command, exit_code=code, output=output)


def last_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:") or "error" in line.lower()]
    return (errors or lines or ["no output"])[-1]
