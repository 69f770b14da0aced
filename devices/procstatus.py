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
