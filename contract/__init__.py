"""The contract every part of rebirth shares: the records that flow between the parts (the Profile, the
slim record, the stored run, device descriptions), the errors with their exit codes, atomic file
writing and the cache folder. It imports nothing heavy (no torch, no executorch, no rich) and no other
part of rebirth.

Each name is imported when it is first used, so that a process that needs one record (the runner, which the
emulated phone starts for every run, needs the errors) does not import them all.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as mypy and readers see them
    from rebirth.contract.cache import cache_root
    from rebirth.contract.cold import ColdStart
    from rebirth.contract.device import (
                                 Battery,
                                 CheckItem,
                                 CoreInfo,
                                 CoreState,
                                 DeviceInfo,
                                 DeviceReport,
                                 DeviceState,
                                 DeviceStatus,
                                 Zone,
    )
    from rebirth.contract.errors import (
                                 ConfigError,
                                 DeviceError,
                                 EmptyETDumpError,
                                 ExitStatus,
                                 InputError,
                                 MissingOperatorError,
                                 MissingToolError,
                                 ModelFileError,
                                 ModelRejectedError,
                                 RebirthError,
                                 RunnerBuildError,
                                 RunnerError,
                                 UnauthorizedError,
                                 UnknownDeviceError,
                                 UnreachableError,
                                 exit_status_of,
    )
    from rebirth.contract.files import sha256_file, write_json_atomic, write_text_atomic
    from rebirth.contract.profile import (
                                 CATEGORIES,
                                 FRAMEWORK,
                                 NON_TENSOR,
                                 TENSOR,
                                 Accuracy,
                                 Latency,
                                 LayerSummary,
                                 Memory,
                                 ModelInfo,
                                 OpRecord,
                                 OpTypeSummary,
                                 Profile,
                                 Settings,
                                 Summary,
    )
    from rebirth.contract.slim import MergeRecord, PlannedMerge, SkipRecord, SlimRecord
    from rebirth.contract.stored import StoredRun, device_fingerprint, key_of, model_key

_WHERE = {
    "cache_root": "cache", "ColdStart": "cold", "Battery": "device",
    "CheckItem": "device", "CoreInfo": "device", "CoreState": "device",
    "DeviceInfo": "device", "DeviceReport": "device", "DeviceState": "device", "DeviceStatus": "device",
    "Zone": "device", "ConfigError": "errors", "DeviceError": "errors", "EmptyETDumpError": "errors",
    "ExitStatus": "errors", "InputError": "errors", "MissingOperatorError": "errors", "MissingToolError": "errors",
    "ModelFileError": "errors", "ModelRejectedError": "errors", "RebirthError": "errors",
    "RunnerBuildError": "errors", "RunnerError": "errors", "UnauthorizedError": "errors",
    "UnknownDeviceError": "errors", "UnreachableError": "errors", "exit_status_of": "errors",
    "sha256_file": "files", "write_json_atomic": "files", "write_text_atomic": "files", "Accuracy": "profile",
    "CATEGORIES": "profile", "FRAMEWORK": "profile", "Latency": "profile", "LayerSummary": "profile",
    "Memory": "profile", "ModelInfo": "profile", "NON_TENSOR": "profile", "OpRecord": "profile",
    "OpTypeSummary": "profile", "Profile": "profile", "Settings": "profile", "Summary": "profile",
    "TENSOR": "profile", "MergeRecord": "slim", "PlannedMerge": "slim", "SkipRecord": "slim", "SlimRecord": "slim",
    "StoredRun": "stored", "device_fingerprint": "stored", "key_of": "stored", "model_key": "stored"
}
__all__ = [
    "Accuracy", "Battery", "cache_root", "CATEGORIES", "CheckItem", "ColdStart", "ConfigError", "CoreInfo", "CoreState",
    "device_fingerprint", "DeviceError", "DeviceInfo", "DeviceReport", "DeviceState", "DeviceStatus",
    "EmptyETDumpError", "exit_status_of", "ExitStatus", "FRAMEWORK", "InputError", "key_of", "Latency",
    "LayerSummary", "Memory", "MergeRecord", "MissingOperatorError", "MissingToolError", "model_key",
    "ModelFileError", "ModelInfo", "ModelRejectedError", "NON_TENSOR", "OpRecord", "OpTypeSummary", "PlannedMerge",
    "Profile", "RebirthError", "RunnerBuildError", "RunnerError", "Settings", "sha256_file", "SkipRecord",
    "SlimRecord", "StoredRun", "Summary", "TENSOR", "UnauthorizedError", "UnknownDeviceError", "UnreachableError",
    "write_json_atomic", "write_text_atomic", "Zone",
]
assert sorted(__all__) == sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'rebirth.contract' has no attribute {name!r}")
    return getattr(importlib.import_module(f"rebirth.contract.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return __all__
