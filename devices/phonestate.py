"""What a phone says about itself, read with one shell command each: properties, clocks,
temperatures and battery. Parsers are separate from the commands so they can be tested on text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from rebirth.contract.device import Battery, CoreState, DeviceState, Zone
from rebirth.devices.procstatus import cpu_ticks

# One line per core and per thermal zone; '-' where a file cannot be read (unrooted phones hide some). Files are
# read with the shell's own ``read``: ``$(cat ...)`` started two processes per file, some eighty per look at a phone.
SNAPSHOT = (
    "r() { v=; read -r v 2>/dev/null < \"$1\"; [ -n \"$v\" ] || v=-; }; "
    "for c in /sys/devices/system/cpu/cpu[0-9]*; do f=$c/cpufreq; "
    "r $f/cpuinfo_max_freq; m=$v; r $f/scaling_cur_freq; u=$v; r $f/scaling_governor; "
    "echo \"cpu ${c##*/cpu} $m $u $v\"; done; "
    "for z in /sys/class/thermal/thermal_zone*; do r $z/temp; t=$v; r $z/type; "
    "echo \"zone ${z##*/thermal_zone} $t $v\"; done; "
    "r /proc/stat; echo \"stat $v\""
)
PROPS = "getprop"
BATTERY = "dumpsys battery"

_PROP = re.compile(r"^\[([^\]]+)\]: \[(.*)\]$")


@dataclass(frozen=True)
class Snapshot:
    cores: tuple[CoreState, ...]
    zones: tuple[Zone, ...]
    cpu_ticks: Optional[tuple[int, int]] = None
    """``(busy, total)`` of ``/proc/stat``."""

    def state(self) -> DeviceState:
        busy, total = self.cpu_ticks or (None, None)
        return DeviceState(self.cores, hottest(self.zones), busy, total)


def parse_props(text: str) -> dict[str, str]:
    """``getprop``'s listing (``[key]: [value]`` lines) -> dict."""
    props = {}
    for line in text.splitlines():
        match = _PROP.match(line.strip())
        if match:
            props[match.group(1)] = match.group(2)
    return props


def _int(text: str) -> Optional[int]:
    return int(text) if text.lstrip("-").isdigit() else None


def celsius(raw: Optional[int]) -> Optional[float]:
    """A thermal zone reading in degrees: most report millidegrees, some whole degrees; nonsense -> None."""
    if raw is None:
        return None
    value = raw / 1000.0 if abs(raw) >= 1000 else float(raw)
    return value if 0.0 < value < 150.0 else None


def parse_snapshot(text: str) -> Snapshot:
    cores, zones = [], []
    ticks = None
    for line in text.splitlines():
        if line.startswith("stat "):
            ticks = cpu_ticks(line[5:])
            continue
        parts = line.split()
        if len(parts) >= 5 and parts[0] == "cpu" and parts[1].isdigit():
            governor = parts[4] if parts[4] != "-" else None
            cores.append(CoreState(int(parts[1]), _int(parts[2]), _int(parts[3]), governor))
        elif len(parts) >= 3 and parts[0] == "zone" and parts[1].isdigit():
            kind = " ".join(parts[3:]) if len(parts) > 3 and parts[3] != "-" else ""
            zones.append(Zone(int(parts[1]), kind, celsius(_int(parts[2]))))
    return Snapshot(tuple(sorted(cores, key=lambda c: c.index)), tuple(sorted(zones, key=lambda z: z.index)), ticks)


def hottest(zones: tuple[Zone, ...]) -> Optional[float]:
    readings = [zone.temperature_c for zone in zones if zone.temperature_c is not None]
    return max(readings) if readings else None


def parse_battery(text: str) -> Battery:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            values[key.strip()] = value.strip()
    temperature = _int(values.get("temperature", ""))
    status = {"1": "unknown", "2": "charging", "3": "discharging", "4": "not charging", "5": "full"}
    powered = [name for name in ("AC", "USB", "Wireless") if values.get(f"{name} powered") == "true"]
    return Battery(_int(values.get("level", "")), temperature / 10.0 if temperature is not None else None,
                   status.get(values.get("status", ""), values.get("status")), ", ".join(powered) or None)


def big_core_mask(cores: tuple[CoreState, ...]) -> Optional[str]:
    """Hex ``taskset`` mask of the cores with the highest maximum frequency (None when unknown)."""
    known = {core.index: core.max_freq_khz for core in cores if core.max_freq_khz}
    if not known:
        return None
    top = max(known.values())
    return format(sum(1 << index for index, freq in known.items() if freq == top), "x")


def mask_cores(mask: str) -> tuple[int, ...]:
    value = int(mask, 16)
    return tuple(index for index in range(value.bit_length()) if value >> index & 1)


def core_mask(cores: tuple[int, ...]) -> str:
    """Hex ``taskset`` mask of core indices: ``(4, 5, 6, 7)`` -> ``f0``."""
    return format(sum(1 << index for index in cores), "x")
