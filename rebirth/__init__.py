"""rebirth: on-device profiling and DeepRebirth-style slimming of neural networks on Android phones.

The Python API, for notebooks and scripts: each job of the command line is one call that returns the records
the command writes::

    import rebirth

    profile = rebirth.profile("zoo:googlenet-small", iterations=20)
    profile.to_dataframe().sort_values("p50_ms", ascending=False).head()
    result = rebirth.compare("zoo:googlenet-small", "out/slim.pte")
    record = rebirth.load("out/slim.json")

Importing rebirth imports nothing heavy; torch and executorch load when a call needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "profile": "rebirth.api", "compare": "rebirth.api", "slim": "rebirth.api", "optimize": "rebirth.api",
    "regress": "rebirth.api", "history": "rebirth.api", "store": "rebirth.api", "load": "rebirth.api",
    "assert_no_regression": "rebirth.profiler.checks",
    "verdicts_frame": "rebirth.contract.checks",
    "Profile": "rebirth.contract.profile", "PairedComparison": "rebirth.contract.paired",
    "SlimRecord": "rebirth.contract.slim", "StoredRun": "rebirth.contract.stored",
    "Check": "rebirth.contract.checks", "Verdict": "rebirth.contract.checks",
    "RebirthError": "rebirth.contract.errors", "InputError": "rebirth.contract.errors",
    "DeviceError": "rebirth.contract.errors",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rebirth' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
