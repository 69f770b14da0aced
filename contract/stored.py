"""The result store's record: one stored run (a Profile and when, where and at which commit it ran),
and what pairs a result with its baseline: the device fingerprint and the model key."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

from rebirth.contract.device import DeviceInfo
from rebirth.contract.errors import InputError
from rebirth.contract.profile import ModelInfo, Profile
from rebirth.contract.stats import median_interval

STORE_VERSION = 1
RUN_FILE = re.compile(r"^(\d{4,})\.json$")
"""A run file's name: its number, four digits or more."""


Key = tuple[str, str]
"""(device fingerprint, model key): what pairs a result with its baseline."""


@dataclass(frozen=True)
class RunSummary:
    """What the store's queries read of a run, kept beside its Profile so that listing, baselines, noise
    learning and the history never decode a Profile."""

    p50_ms: float
    p50_low_ms: float
    """The 95% interval of the median from the run's samples (``median_interval``)."""
    p50_high_ms: float
    peak_rss_bytes: Optional[int]
    noise: tuple[str, ...]
    """The run's noise flags (busy, throttled, too spread out), as their texts: empty for a clean run."""
    energy_mj: Optional[float] = None
    """Energy per inference where it was measured."""

    @classmethod
    def of(cls, profile: Profile) -> RunSummary:
        latency = profile.latency
        low, high = median_interval(latency.raw) if latency.raw else (latency.p50, latency.p50)
        return cls(latency.p50, low, high, profile.memory.peak_rss_bytes, tuple(note.text for note in profile.noise),
                   profile.energy.mj_per_inference if profile.energy else None)


@dataclass(frozen=True)
class StoredRun:
    """One run of the store: when, where and at which commit it ran, its summary, and its Profile (read from the
    store when first asked for)."""

    where: str
    """The run as a user can find it again: ``STORE#FINGERPRINT/NNNN`` or the run file it was read from."""
    number: int
    fingerprint: str
    model_key: str
    device: str
    """The device's name when it ran (an inventory name, ``host:port`` or ``adb:SERIAL``)."""
    commit: Optional[str]
    time: str
    summary: RunSummary
    batch: Optional[str] = None
    """The farm run that stored it (every device of one ``farm run`` shares it); None before it was kept."""
    branch: Optional[str] = None
    model_sha256: Optional[str] = None
    loader: Optional[Callable[[], Profile]] = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> Key:
        return self.fingerprint, self.model_key

    @cached_property
    def profile(self) -> Profile:
        """The whole Profile.

        Raises:
            InputError: it cannot be read (the store sets the run aside).
        """
        if self.loader is None:
            raise InputError(f"{self.where}: the stored run has no profile")
        return self.loader()

    @classmethod
    def of(cls, where: str, number: int, profile: Profile, device: str, commit: Optional[str], time: str,
           batch: Optional[str] = None, branch: Optional[str] = None) -> StoredRun:
        fingerprint, key = key_of(profile)
        run = cls(where, number, fingerprint, key, device, commit, time, RunSummary.of(profile), batch, branch,
                  profile.model.sha256)
        run.__dict__["profile"] = profile
        return run

    def to_dict(self) -> dict[str, Any]:
        """The run file's JSON form (a run file's number comes from its name)."""
        return {"store_version": STORE_VERSION, "fingerprint": self.fingerprint, "model_key": self.model_key,
                "device": self.device, "commit": self.commit, "time": self.time,
                **({"batch": self.batch} if self.batch else {}), **({"branch": self.branch} if self.branch else {}),
                "profile": self.profile.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str, number: int) -> StoredRun:
        """A run from its JSON form.

        Raises:
            InputError: ``data`` is not a stored run.
        """
        try:
            profile = Profile.from_dict(data["profile"])
            return cls.of(where, number, profile, _text(data["device"]), _optional_text(data["commit"]),
                          _text(data["time"]), _optional_text(data.get("batch")), _optional_text(data.get("branch")))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise InputError(f"{where}: not a stored run ({type(error).__name__}: {error})") from None

    @classmethod
    def load(cls, path: Path) -> StoredRun:
        """Read one run file (the file store's, or one a user kept).

        Raises:
            InputError: the file is missing or not a stored run.
        """
        match = RUN_FILE.match(path.name)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"{path}: no such stored run") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InputError(f"{path}: not a stored run ({error})") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: not a stored run (not a JSON object)")
        return cls.from_dict(data, str(path), int(match.group(1)) if match else 0)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, not {type(value).__name__}")
    return value


def _optional_text(value: Any) -> Optional[str]:
    return None if value is None else _text(value)


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
