"""The result store's record: one stored run (a Profile and when, where and at which commit it ran),
and what pairs a result with its baseline: the device fingerprint and the model key."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rebirth.contract.device import DeviceInfo
from rebirth.contract.errors import InputError
from rebirth.contract.profile import ModelInfo, Profile

STORE_VERSION = 1
RUN_FILE = re.compile(r"^(\d{4,})\.json$")
"""A run file's name: its number, four digits or more."""

Key = tuple[str, str]
"""(device fingerprint, model key): what pairs a result with its baseline."""


@dataclass(frozen=True)
class StoredRun:
    """One run file of the store."""

    path: Path
    number: int
    fingerprint: str
    model_key: str
    device: str
    """The device's name when it ran (an inventory name, ``host:port`` or ``adb:SERIAL``)."""
    commit: Optional[str]
    time: str
    profile: Profile
    batch: Optional[str] = None
    """The farm run that stored it (every device of one ``farm run`` shares it); None before it was kept."""

    @property
    def key(self) -> Key:
        return self.fingerprint, self.model_key

    def to_dict(self) -> dict[str, Any]:
        """The run file's JSON form (``path`` and ``number`` come from the file's name)."""
        return {"store_version": STORE_VERSION, "fingerprint": self.fingerprint, "model_key": self.model_key,
                "device": self.device, "commit": self.commit, "time": self.time,
                **({"batch": self.batch} if self.batch else {}), "profile": self.profile.to_dict()}

    @classmethod
    def load(cls, path: Path) -> StoredRun:
        """Read one run file.

        Raises:
            InputError: the file is missing or not a stored run.
        """
        match = RUN_FILE.match(path.name)
        try:
            data = json.loads(path.read_text())
            return cls(path, int(match.group(1)) if match else 0, data["fingerprint"], data["model_key"],
                       data["device"], data["commit"], data["time"], Profile.from_dict(data["profile"]),
                       data.get("batch") if isinstance(data.get("batch"), str) else None)
        except FileNotFoundError:
            raise InputError(f"{path}: no such stored run") from None
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise InputError(f"{path}: not a stored run ({error})") from None


def device_fingerprint(device: DeviceInfo) -> str:
    """``PRODUCT-BUILD-RUNNER8``, safe as a file name.

    The product model as the device reports it, its build (``ro.build.fingerprint`` on a phone, the
    kernel version on a host; the OS release for profiles that predate it) and the first 8 hex digits
    of the sha256 of the runner's bytes (of the runner's name for profiles that predate it).
    """
    build = _short_build(device.build) if device.build else device.os
    runner = device.runner_sha256 or hashlib.sha256((device.runner or "").encode()).hexdigest()
    return f"{_safe(device.product_model or 'unknown')}-{_safe(build or 'unknown')}-{runner[:8]}"


def _short_build(build: str) -> str:
    """A build fingerprint (``brand/product/device:release/ID/incremental:type/keys``) is long: keep
    its release, ID and incremental, which is what changes between builds; other strings as they are."""
    parts = build.split(":")
    return parts[1] if len(parts) == 3 else build


def model_key(model: ModelInfo) -> str:
    """The model as the user named it, without its folder, and its backend: ``zoo:googlenet@xnnpack``.

    The same model on another checkout or machine gets the same key; its bytes may differ (a new
    commit is what a regression check compares).
    """
    return f"{Path(model.source).name}@{model.backend}"


def key_of(profile: Profile) -> Key:
    """(device fingerprint, model key): a result and its baseline pair when their keys are equal."""
    return device_fingerprint(profile.device), model_key(profile.model)


def _safe(text: str, limit: int = 48) -> str:
    """``text`` as a piece of a file name: runs of other characters (``-`` too, which separates the
    pieces of a fingerprint) become ``_``."""
    return re.sub(r"[^A-Za-z0-9.+]+", "_", text).strip("._")[:limit] or "unknown"
