"""The contract every part of rebirth shares: the records that flow between the parts (the Profile, the
slim record, the stored run, device descriptions), the errors with their exit codes, atomic file
writing and the cache folder. It imports nothing heavy (no torch, no executorch, no rich) and no other
part of rebirth.
"""

from rebirth.contract.cache import cache_root
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

__all__ = [
    "Accuracy", "Battery", "cache_root", "CATEGORIES", "CheckItem", "ConfigError", "CoreInfo", "CoreState",
    "device_fingerprint", "DeviceError", "DeviceInfo", "DeviceReport", "DeviceState", "DeviceStatus",
    "EmptyETDumpError", "exit_status_of", "ExitStatus", "FRAMEWORK", "InputError", "key_of", "Latency",
    "LayerSummary", "Memory", "MergeRecord", "MissingOperatorError", "MissingToolError", "model_key",
    "ModelFileError", "ModelInfo", "ModelRejectedError", "NON_TENSOR", "OpRecord", "OpTypeSummary", "PlannedMerge",
    "Profile", "RebirthError", "RunnerBuildError", "RunnerError", "Settings", "sha256_file", "SkipRecord",
    "SlimRecord", "StoredRun", "Summary", "TENSOR", "UnauthorizedError", "UnknownDeviceError", "UnreachableError",
    "write_json_atomic", "write_text_atomic", "Zone",
]
