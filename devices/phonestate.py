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
    "for p in /sys/class/power_supply/*; do [ -e \"$p/type\" ] || continue; r $p/type; k=$v; r $p/status; "
    "echo \"supply ${p##*/} $k $v\"; done; "
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
    supplies: tuple[tuple[str, str, str], ...] = ()
    """``(name, type, status)`` of each ``/sys/class/power_supply`` entry (``battery``, ``Battery``,
    ``Discharging``); ``-`` where a file cannot be read."""

    @property
    def battery(self) -> Optional[str]:
        """The folder of the battery's fuel gauge, or None when the phone shows none."""
        for name, kind, _ in self.supplies:
            if kind == "Battery":
                return f"/sys/class/power_supply/{name}"
        return None

    @property
    def battery_status(self) -> Optional[str]:
        for _, kind, status in self.supplies:
            if kind == "Battery":
                return None if status == "-" else status
        return None

    def hottest_zone(self) -> Optional[int]:
        readings = [zone for zone in self.zones if zone.temperature_c is not None]
        return max(readings, key=lambda zone: zone.temperature_c or 0.0).index if readings else None

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
    cores, zones, supplies = [], [], []
    ticks = None
    for line in text.splitlines():
        if line.startswith("stat "):
            ticks = cpu_ticks(line[5:])
            continue
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "supply":
            supplies.append((parts[1], parts[2], " ".join(parts[3:])))
            continue
        if len(parts) >= 5 and parts[0] == "cpu" and parts[1].isdigit():
            governor = parts[4] if parts[4] != "-" else None
            cores.append(CoreState(int(parts[1]), _int(parts[2]), _int(parts[3]), governor))
        elif len(parts) >= 3 and parts[0] == "zone" and parts[1].isdigit():
            kind = " ".join(parts[3:]) if len(parts) > 3 and parts[3] != "-" else ""
            zones.append(Zone(int(parts[1]), kind, celsius(_int(parts[2]))))
    return Snapshot(tuple(sorted(cores, key=lambda c: c.index)), tuple(sorted(zones, key=lambda z: z.index)), ticks,
                    tuple(supplies))


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


SAMPLE_FIELDS = "__s"
"""The line a run's poller prints per look: ``__s UPTIME RSS_KIB TEMP FREQ CURRENT VOLTAGE STATUS``."""


def sampler(zone: Optional[int], core: Optional[int], battery: Optional[str]) -> str:
    """Shell that prints one ``__s`` line: the uptime, the runner's VmRSS (``$pid``), the temperature of one
    zone, the clock of one core and the battery's gauge; ``-`` where a file cannot be read. Uses ``r`` of
    the poller (``read`` into ``$v``). Paths are rebirth's own (sysfs names read from the phone are never
    pasted: a zone or core is an index, the battery a folder name checked by ``safe_supply``)."""
    temp = f"r /sys/class/thermal/thermal_zone{int(zone)}/temp; t=$v; " if zone is not None else "t=-; "
    freq = (f"r /sys/devices/system/cpu/cpu{int(core)}/cpufreq/scaling_cur_freq; f=$v; "
            if core is not None else "f=-; ")
    gauge = "c=-; u=-; s=-; "
    if battery is not None and safe_supply(battery):
        gauge = f"r {battery}/current_now; c=$v; r {battery}/voltage_now; u=$v; r {battery}/status; s=$v; "
    return ("m=-; while read -r key value unit; do [ \"$key\" = VmRSS: ] && m=$value; done 2>/dev/null "
            "< /proc/$pid/status; "
            f"{temp}{freq}{gauge}read -r up rest < /proc/uptime; echo \"__s $up $m $t $f $c $u $s\"")


def safe_supply(path: str) -> bool:
    """A power-supply folder rebirth may put in a shell command unquoted (letters, digits, ``_-.``)."""
    return re.fullmatch(r"/sys/class/power_supply/[\w.-]+", path) is not None


def core_mask(cores: tuple[int, ...]) -> str:
    """Hex ``taskset`` mask of core indices: ``(4, 5, 6, 7)`` -> ``f0``."""
    return format(sum(1 << index for index in cores), "x")


def fastest_core(mask: Optional[str], cores: tuple[CoreState, ...]) -> Optional[int]:
    """The core whose clock a run's samples read: of those in ``mask`` (all when None), the one with the highest
    maximum clock (the highest index among equals); None when there is none."""
    pinned = set(mask_cores(mask)) if mask else {core.index for core in cores}
    known = {core.index: core.max_freq_khz or 0 for core in cores}
    candidates = sorted(pinned)
    return max(candidates, key=lambda index: (known.get(index, 0), index)) if candidates else None
