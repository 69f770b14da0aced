"""Clocks and temperatures of the host, read from sysfs where it is readable."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Optional

from rebirth.contract.device import CoreState, DeviceState
from rebirth.devices.procstatus import host_cpu_ticks

CPU_ROOT = Path("/sys/devices/system/cpu")
THERMAL_ROOT = Path("/sys/class/thermal")


def read_int(path: Path) -> Optional[int]:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def read_text(path: Path) -> Optional[str]:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def core_state(index: int) -> CoreState:
    freq = CPU_ROOT / f"cpu{index}" / "cpufreq"
    return CoreState(index, read_int(freq / "cpuinfo_max_freq"), read_int(freq / "scaling_cur_freq"),
                     read_text(freq / "scaling_governor"))


def temperature_c() -> Optional[float]:
    """The hottest thermal zone in degrees Celsius, or None where none is readable."""
    readings = [read_int(zone / "temp") for zone in sorted(THERMAL_ROOT.glob("thermal_zone*"))]
    valid = [r for r in readings if r is not None and r > 0]
    return max(valid) / 1000.0 if valid else None


def host_state() -> DeviceState:
    busy, total = host_cpu_ticks() or (None, None)
    return DeviceState(tuple(core_state(i) for i in range(os.cpu_count() or 1)), temperature_c(), busy, total)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


SUPPLY_ROOT = Path("/sys/class/power_supply")


def battery_folder() -> Optional[Path]:
    """This host's battery (a laptop's), or None: a server has none."""
    for supply in sorted(SUPPLY_ROOT.glob("*")):
        if read_text(supply / "type") == "Battery":
            return supply
    return None


def max_cur_freq_khz() -> Optional[int]:
    clocks = [read_int(CPU_ROOT / f"cpu{i}/cpufreq/scaling_cur_freq") for i in range(os.cpu_count() or 1)]
    known = [clock for clock in clocks if clock]
    return max(known) if known else None
