"""A process's memory as Linux reports it in ``/proc/PID/status`` (``VmRSS``, ``VmHWM``: the peak)."""

from __future__ import annotations

from typing import Optional


def status_kib(field: str, pid: int | str = "self") -> Optional[int]:
    """A ``Vm*`` field of ``/proc/PID/status`` in KiB; None where /proc or the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def cpu_ticks(stat_line: str) -> Optional[tuple[int, int]]:
    """``(busy, total)`` clock ticks of the ``cpu`` line of ``/proc/stat`` (user nice system idle iowait irq
    softirq steal ...): idle and iowait are idle, the rest (stolen time too) busy."""
    parts = stat_line.split()
    if len(parts) < 9 or parts[0] != "cpu" or not all(part.isdigit() for part in parts[1:9]):
        return None
    ticks = [int(part) for part in parts[1:9]]
    total = sum(ticks)
    return total - ticks[3] - ticks[4], total


def host_cpu_ticks() -> Optional[tuple[int, int]]:
    """``cpu_ticks`` of this host, now."""
    try:
        with open("/proc/stat") as stat:
            return cpu_ticks(stat.readline())
    except OSError:
        return None


def process_cpu_ticks(pid: int | str = "self") -> Optional[int]:
    """User plus system clock ticks a process (all its threads) has used; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # the name, in parentheses, may hold spaces
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12]) if len(fields) > 12 else None
