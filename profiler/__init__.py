"""The per-layer profiler: ETDump + ETRecord -> a Profile record.

Light names are imported here; the ones that need torch or executorch load on first use,
so that ``rebirth-profile --help`` stays fast.
"""

from profiler.errors import EmptyETDumpError, InputError, MissingOperatorError, ModelFileError
from profiler.record import (CATEGORIES, FRAMEWORK, NON_TENSOR, SCHEMA_VERSION, TENSOR, Accuracy, DeviceInfo,
                             CoreInfo, Latency, LayerSummary, Memory, ModelInfo, OpRecord, OpTypeSummary,
                             Profile, Settings, Summary)

__all__ = [
    "Accuracy", "CATEGORIES", "CoreInfo", "DeviceInfo", "EmptyETDumpError", "FRAMEWORK", "InputError",
    "Latency", "LayerSummary", "Measurement", "Memory", "MissingOperatorError", "ModelFileError", "ModelInfo",
    "NON_TENSOR", "OpRecord", "OpTypeSummary", "Profile", "SCHEMA_VERSION", "Settings", "Summary", "TENSOR",
    "build_profile", "classify",
]

_LAZY = {
    "Measurement": "profiler.build",
    "build_profile": "profiler.build",
    "classify": "profiler.taxonomy",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'profiler' has no attribute {name!r}")
