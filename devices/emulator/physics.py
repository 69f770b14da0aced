"""The emulated phone's body: heat that follows the runner's CPU time, clocks that fall above a trip point, and
a battery fuel gauge whose current follows the CPU load, in a vendor's units and sign.

One thread per phone ticks every ``tick_s``: it reads how much CPU the phone's runners used since the last tick
(their real CPU time from ``/proc/PID/stat``; a sleeping runner, which simulates its compute, adds the time it
slept), moves the temperature toward ``ambient + heat_per_core * busy cores`` with a time constant, sets
``scaling_cur_freq`` of every core to a share of its maximum while the temperature is over the trip point (with
hysteresis), and writes the gauge's ``current_now`` and ``voltage_now``, with noise. The files are the phone's
sysfs files in its sandbox, read by rebirth through ``adb shell`` as on a phone.

Runners make themselves known by writing their process id into ``PIDS_DIR`` before they exec (the phone's
``taskset`` and ``executor_runner`` scripts do it); the sleeping runner writes the milliseconds it slept as
"busy" into ``BUSY_DIR``. ``dumpsys battery unplug`` / ``reset`` (the phone's ``dumpsys`` script) write
``UNPLUGGED``, which the gauge honours: a phone on USB is charging, as a real one is.
"""

from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

STATE_DIR = ".physics"
PIDS_DIR = f"{STATE_DIR}/pids"
BUSY_DIR = f"{STATE_DIR}/busy"
UNPLUGGED = f"{STATE_DIR}/unplugged"
BATTERY = "sys/class/power_supply/battery"

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Gauge:
    """How a vendor's fuel gauge reports: the unit of ``current_now`` and its sign while discharging."""

    unit: str = "uA"
    """``uA`` (the kernel's ABI, Pixels) or ``mA`` (older Samsung kernels)."""
    discharging_negative: bool = True
    """The kernel's ABI: negative while the battery discharges. Some vendors report it positive."""
    voltage_unit: str = "uV"


@dataclass(frozen=True)
class Physics:
    """The heat model and the gauge of an emulated phone."""

    ambient_c: float = 35.0
    start_c: Optional[float] = None
    """The temperature when the phone starts (a hot start: above ``trip_c``); default ``ambient_c``."""
    heat_per_core_c: float = 12.0
    """Steady-state rise per fully busy core."""
    tau_s: float = 20.0
    """Time constant of heating and cooling."""
    trip_c: float = 45.0
    release_c: float = 43.0
    """Clocks come back once the temperature falls below this (hysteresis)."""
    throttle: float = 0.6
    """The share of each core's maximum clock while throttled."""
    idle_ma: float = 300.0
    ma_per_core: float = 450.0
    """Battery current of one fully busy core, over idle."""
    noise_ma: float = 15.0
    voltage_v: float = 3.85
    charge_ma: float = 1500.0
    """Current into the battery while it charges."""
    plugged: bool = True
    """On USB (charging) until ``dumpsys battery unplug``."""
    gauge: Optional[Gauge] = None
    """How the gauge reports; default: as the phone's profile says."""
    gauge_file: bool = True
    """Whether the phone has the gauge's files at all."""
    tick_s: float = 0.05
    seed: int = 0


class Body(threading.Thread):
    """The thread that moves an emulated phone's temperature, clocks and gauge."""

    def __init__(self, root: Path, max_freq_khz: tuple[int, ...], physics: Physics, gauge: Optional[Gauge] = None):
        super().__init__(daemon=True, name="phone-physics")
        self.root, self.max_freq_khz, self.physics = root, max_freq_khz, physics
        self.gauge = physics.gauge or gauge or Gauge()
        self.temperature_c = physics.start_c if physics.start_c is not None else physics.ambient_c
        self.throttled = self.temperature_c >= physics.trip_c
        self.busy_cores = 0.0
        self._cpu: dict[str, int] = {}
        self._busy: dict[str, float] = {}
        self._random = random.Random(physics.seed)
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def populate(self) -> None:
        """Create the state folders and the gauge's files, and write the first readings."""
        for folder in (PIDS_DIR, BUSY_DIR):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        if self.physics.gauge_file:
            battery = self.root / BATTERY
            battery.mkdir(parents=True, exist_ok=True)
            (battery / "type").write_text("Battery\n")
            (battery / "present").write_text("1\n")
        self._write(0.0)

    def run(self) -> None:
        while not self._stop.wait(self.physics.tick_s):
            self.step(self.physics.tick_s)

    def stop(self) -> None:
        self._stop.set()

    def step(self, dt: float) -> None:
        """One tick: the load since the last, then temperature, clocks and gauge."""
        with self._lock:
            busy_s = self._runner_cpu_s() + self._slept_s()
            self.busy_cores = busy_s / dt if dt > 0 else 0.0
            p = self.physics
            target = p.ambient_c + p.heat_per_core_c * self.busy_cores
            self.temperature_c += (target - self.temperature_c) * min(1.0, dt / p.tau_s)
            if self.temperature_c >= p.trip_c:
                self.throttled = True
            elif self.temperature_c < p.release_c:
                self.throttled = False
            self._write(self.busy_cores)

    def heat(self, temperature_c: float) -> None:
        """Set the temperature now (tests: a phone that got hot)."""
        with self._lock:
            self.temperature_c = temperature_c
            self.throttled = temperature_c >= self.physics.trip_c
            self._write(self.busy_cores)

    def _runner_cpu_s(self) -> float:
        """CPU seconds the registered runners used since the last tick; gone ones are forgotten."""
        folder = self.root / PIDS_DIR
        used = 0
        for entry in os.listdir(folder):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                ticks = int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                self._cpu.pop(entry, None)
                _remove(folder / entry)
                continue
            used += ticks - self._cpu.get(entry, 0)
            self._cpu[entry] = ticks
        return used / _TICKS_PER_S

    def _slept_s(self) -> float:
        """Seconds the sleeping runners simulated as compute since the last tick."""
        folder = self.root / BUSY_DIR
        slept = 0.0
        for entry in os.listdir(folder):
            if not entry.isdigit():
                continue  # a file being replaced
            try:
                total = float((folder / entry).read_text() or 0) / 1000
            except (OSError, ValueError):
                continue
            slept += max(0.0, total - self._busy.get(entry, 0.0))
            self._busy[entry] = total
            if not Path(f"/proc/{entry}").exists():
                self._busy.pop(entry, None)
                _remove(folder / entry)
        return slept

    def _write(self, busy_cores: float) -> None:
        p = self.physics
        share = p.throttle if self.throttled else 1.0
        for index, top in enumerate(self.max_freq_khz):
            _replace(self.root / f"sys/devices/system/cpu/cpu{index}/cpufreq/scaling_cur_freq",
                     f"{int(top * share)}\n")
        for zone, offset in enumerate((0.0, -2.0)):
            _replace(self.root / f"sys/class/thermal/thermal_zone{zone}/temp",
                     f"{round((self.temperature_c + offset) * 1000)}\n")
        if not p.gauge_file or not (self.root / BATTERY).is_dir():
            return
        charging = p.plugged and not (self.root / UNPLUGGED).exists()
        draw_ma = p.idle_ma + p.ma_per_core * busy_cores + self._random.gauss(0.0, p.noise_ma)
        into_battery_ma = (p.charge_ma - draw_ma) if charging else -draw_ma
        reported = into_battery_ma if self.gauge.discharging_negative else -into_battery_ma
        value = reported * 1000 if self.gauge.unit == "uA" else reported
        volts = p.voltage_v * (1_000_000 if self.gauge.voltage_unit == "uV" else 1000)
        battery = self.root / BATTERY
        _replace(battery / "current_now", f"{round(value)}\n")
        _replace(battery / "voltage_now", f"{round(volts)}\n")
        _replace(battery / "status", "Charging\n" if charging else "Discharging\n")


def _replace(path: Path, text: str) -> None:
    """Write a whole file at once: a reader sees the old value or the new, never half of one."""
    if not path.parent.is_dir():
        return  # the test removed it (a gauge that vanished): it stays gone
    temporary = path.with_name(f".{path.name}.new")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    except OSError:
        pass


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass

