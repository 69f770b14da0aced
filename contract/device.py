"""What a device is and how it was while it ran: the records devices produce and reports read.

``DeviceInfo`` is the one description of a device, end to end: a device describes itself with it
(identity only), and a Profile keeps it with the run's clocks and temperatures filled in
(``DeviceInfo.with_run``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

NATIVE, PYTHON, EXTERNAL = "native", "python", "external"
EMULATED = "emulated"
"""The kind of a device whose CPU is emulated (qemu): its timings say nothing about a phone."""

THROTTLED_BELOW = 0.9
"""A core that ends a run below this fraction of its maximum clock, having started at it, throttled."""


@dataclass(frozen=True)
class CoreState:
    """One CPU core at one moment."""

    index: int
    max_freq_khz: Optional[int] = None
    cur_freq_khz: Optional[int] = None
    governor: Optional[str] = None


@dataclass(frozen=True)
class DeviceState:
    """Clocks, the hottest temperature and the CPU time spent so far, at one moment."""

    cores: tuple[CoreState, ...] = ()
    temperature_c: Optional[float] = None
    cpu_busy_ticks: Optional[int] = None
    """CPU time every process has used since boot, all cores, in clock ticks (``/proc/stat``; stolen
    time counts: a hypervisor's other guests are other work too)."""
    cpu_total_ticks: Optional[int] = None
    """All CPU time since boot, all cores, busy or idle, in clock ticks."""


@dataclass(frozen=True)
class CoreInfo:
    """One CPU core over a run: its clock at the start and at the end."""

    index: int
    max_freq_khz: Optional[int] = None
    governor: Optional[str] = None
    """``scaling_governor`` (``schedutil``, ``performance``, ...)."""
    cur_freq_khz_start: Optional[int] = None
    cur_freq_khz_end: Optional[int] = None


@dataclass(frozen=True)
class DeviceInfo:
    """A device: what it is, and (in a Profile) its state at the start and end of the run."""

    name: str
    kind: str
    """``local``, ``adb`` (a phone over ADB) or ``emulated``."""
    serial: Optional[str] = None
    product_model: Optional[str] = None
    abi: Optional[str] = None
    os: Optional[str] = None
    cores: tuple[CoreInfo, ...] = ()
    temperature_c_start: Optional[float] = None
    temperature_c_end: Optional[float] = None
    throttled: Optional[bool] = None
    runner: Optional[str] = None
    build: Optional[str] = None
    """The OS build (``ro.build.fingerprint`` on Android)."""
    runner_sha256: Optional[str] = None
    """The runner's bytes, hashed: a rebuilt runner is another device for the result store."""
    runner_kind: Optional[str] = None
    """``native`` (rebirth's C++ runner), ``python`` (rebirth's fallback over the pybindings, which idles at
    about 220 MB) or ``external`` (a runner the inventory or the phone provides)."""

    other_load: Optional[float] = None
    """The share of the device's CPU (all cores) that other processes used while the runner ran."""
    cooling: Optional[Cooling] = None
    """How the device was let cool before the run (``devices.thermal``); None: not gated."""
    freq_khz_low: Optional[int] = None
    """The lowest clock of the runner's cores sampled while it ran (``Sample.freq_khz``)."""
    freq_khz_high: Optional[int] = None
    freq_khz_top: Optional[int] = None
    """The maximum clock of the core those samples read (its ``cpuinfo_max_freq``)."""
    temperature_c_peak: Optional[float] = None
    """The hottest reading sampled while the runner ran."""

    def with_run(self, before: DeviceState, after: DeviceState, runner_cpu_ticks: Optional[int] = None,
                 samples: tuple[Sample, ...] = (), cooling: Optional[Cooling] = None,
                 sampled_core: Optional[int] = None) -> DeviceInfo:
        """This device with the clocks and temperatures read before and after a run, and the share of its
        CPU that other work took meanwhile (given the runner's own CPU time); with the samples taken while it
        ran, the range of its clock and its hottest reading, and how it was let cool before."""
        end = {core.index: core for core in after.cores}
        cores = tuple(CoreInfo(c.index, c.max_freq_khz, c.governor, c.cur_freq_khz,
                               end[c.index].cur_freq_khz if c.index in end else None) for c in before.cores)
        running = [sample for sample in samples if sample.t_s >= 0]
        top = next((core.max_freq_khz for core in before.cores if core.index == sampled_core), None)
        clocks = [sample.freq_khz for sample in running if sample.freq_khz]
        temperatures = [sample.temperature_c for sample in running if sample.temperature_c is not None]
        return dataclasses.replace(self, cores=cores, temperature_c_start=before.temperature_c,
                                   temperature_c_end=after.temperature_c, throttled=throttled(before, after),
                                   other_load=other_load(before, after, runner_cpu_ticks), cooling=cooling,
                                   freq_khz_low=min(clocks) if clocks else None,
                                   freq_khz_high=max(clocks) if clocks else None, freq_khz_top=top,
                                   temperature_c_peak=max(temperatures) if temperatures else None)


def throttled(before: DeviceState, after: DeviceState) -> Optional[bool]:
    """True when a core ended the run clocked below 90% of its maximum while it started at it;
    None when the clocks cannot be read."""
    clocks = [(b.max_freq_khz, b.cur_freq_khz or 0, a.cur_freq_khz) for b, a in zip(before.cores, after.cores)
              if b.max_freq_khz and a.cur_freq_khz]
    if not clocks:
        return None
    return any(end < THROTTLED_BELOW * top <= start for top, start, end in clocks)


MIN_LOAD_WINDOW_TICKS = 60
"""Below this many clock ticks of all cores (0.3 s of a 2-core device at 100 Hz) the load is not judged."""


def other_load(before: DeviceState, after: DeviceState, runner_cpu_ticks: Optional[int]) -> Optional[float]:
    """The share of all CPU time between ``before`` and ``after`` that went to processes other than the
    runner (and the measuring tool); None when the CPU counters or the runner's time cannot be read, or
    when the run was too short for clock ticks to say (a tick or two of rounding would read as 10%)."""
    counters = (before.cpu_busy_ticks, after.cpu_busy_ticks, before.cpu_total_ticks, after.cpu_total_ticks)
    if runner_cpu_ticks is None or any(value is None for value in counters):
        return None
    busy_start, busy_end, total_start, total_end = (int(value or 0) for value in counters)
    total = total_end - total_start
    if total < MIN_LOAD_WINDOW_TICKS:
        return None
    return min(1.0, max(0.0, (busy_end - busy_start - runner_cpu_ticks) / total))


@dataclass(frozen=True)
class Zone:
    """One thermal zone."""

    index: int
    kind: str
    temperature_c: Optional[float]


@dataclass(frozen=True)
class Battery:
    level: Optional[int] = None
    temperature_c: Optional[float] = None
    status: Optional[str] = None
    powered: Optional[str] = None


@dataclass(frozen=True)
class DeviceReport:
    """What `rebirth devices info` shows: identity, SoC, cores, clocks, temperatures, battery."""

    device: DeviceInfo
    props: dict[str, str] = field(default_factory=dict)
    cores: tuple[CoreState, ...] = ()
    zones: tuple[Zone, ...] = ()
    battery: Optional[Battery] = None
    big_core_mask: Optional[str] = None


@dataclass(frozen=True)
class DeviceStatus:
    """One row of `rebirth devices list`."""

    name: str
    kind: str
    target: str
    status: str
    detail: str = ""


@dataclass(frozen=True)
class CheckItem:
    """One line of `rebirth devices check`."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Sample:
    """One reading of a device while the runner ran: what a timeline's counter tracks and the energy per
    inference are made of. Every field but the time may be None: a phone hides what it hides."""

    t_s: float
    """Seconds since the runner started, on the device's clock."""
    rss_bytes: Optional[int] = None
    """The runner's resident memory (``VmRSS``)."""
    temperature_c: Optional[float] = None
    """The hottest thermal zone."""
    freq_khz: Optional[int] = None
    """The highest current clock among the cores the runner was pinned to (all cores when not pinned)."""
    current_ua: Optional[float] = None
    """The battery's current in µA, positive while the phone draws from it (normalised from the vendor's
    unit and sign, ``devices.energy``)."""
    voltage_uv: Optional[float] = None
    """The battery's voltage in µV."""
    charging: Optional[bool] = None


@dataclass(frozen=True)
class Cooling:
    """How a device was let cool before a measured run: the limit its hottest thermal zone had to fall below,
    where the limit came from, and how long that took."""

    limit_c: Optional[float]
    """None: no limit known (no thermal zones, or nothing learned yet): nothing was waited for."""
    source: str
    """``devices.toml``, ``--cool-below``, ``learned: idle 35.0 °C + 3 °C``, or why there is none."""
    start_c: Optional[float] = None
    end_c: Optional[float] = None
    waited_s: float = 0.0
    cooled: bool = True
    """False: still above the limit when the wait's bound ran out (a block is then discarded)."""
    bound_s: float = 0.0

    def shown(self) -> str:
        if self.limit_c is None:
            return f"no thermal gate ({self.source})"
        if not self.cooled:
            return (f"too hot: {self.end_c:.1f} °C after waiting {self.waited_s:.0f} s, over the {self.limit_c:.1f} °C "
                    f"limit ({self.source})")
        if self.waited_s >= 0.5:
            return (f"cooled from {self.start_c:.1f} to {self.end_c:.1f} °C in {self.waited_s:.0f} s, below "
                    f"{self.limit_c:.1f} °C ({self.source})")
        return f"{self.start_c:.1f} °C, below the {self.limit_c:.1f} °C limit ({self.source})"
