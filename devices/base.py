"""The one interface every device implements, and what goes in and out of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol

ProgressCallback = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; stages: ``push``, ``warmup``, ``run``, ``pull``."""


@dataclass(frozen=True)
class RunRequest:
    """What to run: a .pte, how many times, and how to pin it."""

    model_path: Path
    iterations: int = 20
    warmup: int = 3
    threads: Optional[int] = None
    cpu_affinity: Optional[tuple[int, ...]] = None
    cooldown_s: float = 0.0
    etdump: bool = True


@dataclass(frozen=True)
class CoreState:
    index: int
    max_freq_khz: Optional[int] = None
    cur_freq_khz: Optional[int] = None
    governor: Optional[str] = None


@dataclass(frozen=True)
class DeviceState:
    """Clocks and temperature at one moment."""

    cores: tuple[CoreState, ...] = ()
    temperature_c: Optional[float] = None


@dataclass(frozen=True)
class DeviceDescription:
    """What does not change between runs."""

    name: str
    kind: str
    serial: Optional[str] = None
    product_model: Optional[str] = None
    abi: Optional[str] = None
    os: Optional[str] = None
    runner: Optional[str] = None
    build: Optional[str] = None
    """The OS build (``ro.build.fingerprint`` on Android)."""
    runner_sha256: Optional[str] = None
    """The runner's bytes, hashed: a rebuilt runner is another device for the result store."""


@dataclass(frozen=True)
class RunResult:
    """What came back from a run: the ETDump on the host, the runner's log and memory."""

    etdump_path: Optional[Path]
    log: str
    peak_rss_bytes: Optional[int]
    baseline_rss_bytes: Optional[int]
    state_before: DeviceState = field(default_factory=DeviceState)
    state_after: DeviceState = field(default_factory=DeviceState)
    threads: Optional[int] = None
    """Runtime threads the device used (None: the runtime's default)."""
    cpu_affinity: Optional[str] = None
    """The ``taskset`` mask (hex) or core list the runner was pinned to."""


class Device(Protocol):
    """A place that runs the runner: the host (``local``) or a phone."""

    name: str

    def describe(self) -> DeviceDescription: ...

    def state(self) -> DeviceState: ...

    def run(self, request: RunRequest, workdir: Path,
            progress: Optional[ProgressCallback] = None) -> RunResult: ...
