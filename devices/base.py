"""The one interface every device implements, and what goes in and out of a run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Protocol

from rebirth.contract.device import CheckItem, Cooling, DeviceInfo, DeviceReport, DeviceState, Sample
from rebirth.contract.notes import Note
from rebirth.devices.runlog import RunLog

ProgressCallback = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; stages: ``push``, ``warmup``, ``run``, ``pull``."""

ProbeModel = Callable[[], Path]
"""Returns a small .pte that any runner can run: `check` runs it to see that the runner writes an ETDump."""


@dataclass(frozen=True)
class RunRequest:
    """What to run: a .pte, how many times, and how to pin it."""

    model_path: Path
    iterations: int = 20
    warmup: int = 3
    threads: Optional[int] = None
    cpu_affinity: Optional[tuple[int, ...]] = None
    """The device's cores to pin the runner to (None: the device's setting, else its default: a phone's big
    cores, the host unpinned)."""
    cooldown_s: float = 0.0
    etdump: bool = True
    paired_model_path: Optional[Path] = None
    """A second .pte run alternately with the first in the same process (``Device.pairs_in_process``)."""
    gate: bool = True
    """Wait for the device to cool first (``devices.thermal``); False for the second run of a paired block."""
    cool_below_c: Optional[float] = None
    """The limit to cool below; None: the inventory's, else the learned one."""
    cool_wait_s: Optional[float] = None
    cool_wait_cap_s: Optional[float] = None
    """At most this wait, whatever the settings say (what is left of a comparison's budget)."""
    """The longest wait; None: the inventory's, else ``devices.thermal.DEFAULT_WAIT_S``."""
    drop_page_cache: bool = False
    """Drop the model's file from the device's page cache right before the runner starts (a cold start)."""


@dataclass(frozen=True)
class RunDefaults:
    """Run settings a device's inventory entry gives; None where it gives none."""

    warmup: Optional[int] = None
    iterations: Optional[int] = None
    threads: Optional[int] = None
    cooldown_s: Optional[float] = None
    cpu_affinity: Optional[tuple[int, ...]] = None
    """The cores to pin to (devices.toml's ``cpu_mask``)."""
    backend: Optional[str] = None
    """The backend to lower a model to for this device (``rebirth tune --save`` writes it)."""


@dataclass(frozen=True)
class RunResult:
    """What came back from a run: the ETDump on the host, the runner's log (parsed once) and memory."""

    etdump_path: Optional[Path]
    log: RunLog
    peak_rss_bytes: Optional[int]
    state_before: DeviceState = field(default_factory=DeviceState)
    state_after: DeviceState = field(default_factory=DeviceState)
    threads: Optional[int] = None
    """Runtime threads the device used (None: the runtime's default)."""
    cpu_affinity: Optional[str] = None
    """The ``taskset`` mask (hex) or core list the runner was pinned to."""
    notes: tuple[Note, ...] = ()
    """What a reader of the numbers must know (the fallback runner was used, the CPU was emulated)."""
    runner_cpu_ticks: Optional[int] = None
    """CPU time the runner used (all threads, clock ticks): with the device's CPU counters before and after,
    what is left is other work that competed with it."""
    cooling: Optional[Cooling] = None
    """How the device was let cool before the run (None: the run was not gated)."""
    samples: tuple[Sample, ...] = ()
    """Readings of the device while the runner ran (memory, temperature, clock, battery current), in time
    order; empty where the device cannot be read during a run. Readings before the runner started (the idle
    draw the energy is measured over) have a negative time."""
    sampled_core: Optional[int] = None
    """The core whose clock the samples read (the fastest of those the runner was pinned to)."""
    energy_gauge: Optional[str] = None
    """The battery gauge the samples' current came from (its folder and unit), None without one."""
    page_cache_flushed: Optional[bool] = None
    """Whether the model's file was dropped from the page cache before the runner started (None: not asked);
    a note says why not."""

    @property
    def baseline_rss_bytes(self) -> Optional[int]:
        """The runner's resident memory before it loaded the model, as it said."""
        return self.log.baseline_rss_bytes


class Device(Protocol):
    """A place that runs the runner: the host (``local``) or a phone. Use it as a context manager (or call
    ``close``): a phone keeps its connection open until then."""

    name: str
    kind: str
    """``local`` or ``adb``."""

    @property
    def defaults(self) -> RunDefaults: ...

    def describe(self) -> DeviceInfo: ...

    def state(self) -> DeviceState: ...

    def run(self, request: RunRequest, workdir: Path,
            progress: Optional[ProgressCallback] = None) -> RunResult: ...

    def pairs_in_process(self) -> bool:
        """Whether this device's runner can run two programs alternately in one process (rebirth's native
        runner can: ``RunRequest.paired_model_path``)."""
        ...

    def report(self) -> DeviceReport:
        """Identity, clocks, temperatures and battery, for `rebirth devices info`."""
        ...

    def check(self, probe: Optional[ProbeModel] = None) -> list[CheckItem]:
        """Whether the device can be profiled: reachable, authorized, runner present, event tracer on."""
        ...

    def abort(self) -> None:
        """Stop what the device is doing now, from another thread: the runner is killed (a phone's connection
        closed), and the call in progress ends with a DeviceError."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Device: ...

    def __exit__(self, *exc: object) -> None: ...
