"""Every error a user can cause or a device can suffer, and the one table of exit codes.

The command line prints these as one line and exits with the error's ``exit_status``; anything
else that escapes is a bug and ends in a traceback (exit 70).

=====  ============  ===================================================================
code   name          meaning, for every command
=====  ============  ===================================================================
0      OK            done; every check passed
1      REGRESSION    a regression check found a result worse than its baseline
2      USAGE         the input was wrong: a bad path or option, a model the runtime
                     refuses, an unknown device, a wrong devices.toml
3      NO_ANSWER     no answer could be had: a device failed (unreachable, runner
                     crash, timeout) or a check could not be judged
70     BUG           rebirth itself failed (a traceback is printed; please report it)
130    INTERRUPTED   Ctrl-C
=====  ============  ===================================================================
"""

from __future__ import annotations

import enum
from typing import Optional


class ExitStatus(enum.IntEnum):
    """rebirth's exit codes; each means the same for every command."""

    OK = 0
    REGRESSION = 1
    USAGE = 2
    NO_ANSWER = 3
    BUG = 70
    INTERRUPTED = 130


class RebirthError(Exception):
    """An error that ends a command with one line; ``device`` and ``step`` say where it happened."""

    exit_status = ExitStatus.BUG

    def __init__(self, message: str, *, device: str = "", step: str = ""):
        super().__init__(message)
        self.device, self.step = device, step


class InputError(RebirthError):
    """The user's input is wrong: a bad path, a bad model file, a bad option."""

    exit_status = ExitStatus.USAGE


class ModelFileError(InputError):
    """A model file that cannot be read or is not what it claims to be."""


class MissingOperatorError(InputError):
    """The .pte needs an operator the runtime was not built with."""


class EmptyETDumpError(InputError):
    """The runner wrote an ETDump with no events: it was built without the event tracer."""


class UnknownDeviceError(InputError):
    """The user named a device, group or address that does not exist."""


class ConfigError(InputError):
    """The device inventory (devices.toml) is wrong."""


class MissingToolError(InputError):
    """A tool rebirth needs is not installed (a compiler, qemu); the message names the package."""


class RunnerBuildError(RebirthError):
    """rebirth's native runner could not be built (a download or the compiler failed)."""

    exit_status = ExitStatus.NO_ANSWER


class DeviceError(RebirthError):
    """A device command failed: carries the device, the step, the command, its exit code and output."""

    exit_status = ExitStatus.NO_ANSWER

    def __init__(self, message: str, *, device: str = "", step: str = "", command: str = "",
                 exit_code: Optional[int] = None, output: str = ""):
        super().__init__(message, device=device, step=step)
        self.command, self.exit_code, self.output = command, exit_code, output


class UnreachableError(DeviceError):
    """The phone cannot be reached or stopped answering."""


class UnauthorizedError(UnreachableError):
    """The phone answers but has not authorized this computer's ADB key."""


class RunnerError(DeviceError):
    """The runner process failed on the device."""


class ModelRejectedError(RunnerError):
    """The runtime refused the model (bad program, missing operator): the user's input."""

    exit_status = ExitStatus.USAGE


def exit_status_of(error: BaseException) -> Optional[ExitStatus]:
    """The exit status for an error rebirth expects, or None for a bug (which must raise)."""
    if isinstance(error, RebirthError) and error.exit_status is not ExitStatus.BUG:
        return error.exit_status
    return None
