"""The thermal gate: before a measured run, wait until the device's hottest thermal zone is below a limit.

The limit is the inventory's ``cool_below_c`` (or ``--cool-below``), else learned: the lower quartile of the
temperatures this device showed before its last ``IDLE_HISTORY`` runs within six hours (kept in rebirth's cache,
per device), plus ``MARGIN_C``. A device never seen has no learned limit: its first run is not gated, and
teaches one. The wait is bounded (``cool_wait_s``, default ``DEFAULT_WAIT_S``, and what is left of a
comparison's budget); a device still too hot then is flagged, and a paired comparison discards the block when
the limit was set (a learned one may be off: ``profiler.paired``).
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from rebirth.contract.cache import cache_root
from rebirth.contract.device import Cooling
from rebirth.contract.files import write_json_atomic
from rebirth.devices.base import RunRequest

MARGIN_C = 3.0
DEFAULT_WAIT_S = 120.0
POLL_S = 2.0
IDLE_HISTORY = 20
IDLE_MAX_AGE_S = 6 * 3600.0


def _history_path(device_key: str) -> Path:
    return cache_root() / "thermal" / (re.sub(r"[^\w.-]", "_", device_key) + ".json")


def _readings(device_key: str, now: float) -> list[tuple[float, float]]:
    """``(time, °C)`` of the device's recent pre-run readings: the last ``IDLE_HISTORY`` within ``IDLE_MAX_AGE_S``."""
    try:
        stored = json.loads(_history_path(device_key).read_text())
        readings = [(float(when), float(value)) for when, value in stored]
    except (OSError, ValueError, TypeError):
        return []
    return [(when, value) for when, value in readings if now - when <= IDLE_MAX_AGE_S][-IDLE_HISTORY:]


def learned_idle(device_key: str, now: Optional[float] = None) -> Optional[float]:
    """The device's idle temperature: the lower quartile of its recent pre-run readings (the lowest while
    there are fewer than four). Readings expire, so that a warmer room or another season moves it back up."""
    values = sorted(value for _, value in _readings(device_key, time.time() if now is None else now))
    if not values:
        return None
    return values[0] if len(values) < 4 else statistics.quantiles(values, n=4)[0]


def remember(device_key: str, temperature_c: Optional[float], now: Optional[float] = None) -> None:
    """Keep a temperature read before a run (what the idle temperature is learned from)."""
    if temperature_c is None:
        return
    now = time.time() if now is None else now
    readings = _readings(device_key, now)[-(IDLE_HISTORY - 1):]
    try:
        write_json_atomic(_history_path(device_key), [*readings, (round(now, 1), round(temperature_c, 2))])
    except OSError:
        pass  # a read-only cache costs the learning, not the run


def limit_for(device_key: str, configured: Optional[float], source: str) -> tuple[Optional[float], str]:
    """The limit to cool below, and where it came from."""
    if configured is not None:
        return configured, source
    idle = learned_idle(device_key)
    if idle is None:
        return None, "nothing learned yet: this run teaches the device's idle temperature"
    return idle + MARGIN_C, f"learned: idle {idle:.1f} °C + {MARGIN_C:.0f} °C"


def wait_bound(request: RunRequest, configured_s: Optional[float] = None) -> float:
    """The longest wait before a run: the request's, else the device's setting, else ``DEFAULT_WAIT_S``; never
    beyond the request's cap (what is left of a comparison's budget)."""
    bound = next((s for s in (request.cool_wait_s, configured_s) if s is not None), DEFAULT_WAIT_S)
    return bound if request.cool_wait_cap_s is None else max(0.0, min(bound, request.cool_wait_cap_s))


def cool(read: Callable[[], Optional[float]], limit_c: Optional[float], source: str, bound_s: float,
         sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
         poll_s: float = POLL_S) -> Cooling:
    """Wait, reading the hottest zone every ``poll_s``, until it is at or below ``limit_c`` or ``bound_s``
    has passed. ``read`` returns None where the device has no readable zone: then there is no gate."""
    start = clock()
    first = current = read()
    if current is None:
        return Cooling(None, "the device shows no readable thermal zone")
    if limit_c is None:
        return Cooling(None, source, first, current)
    while current > limit_c and clock() - start < bound_s:
        sleep(min(poll_s, max(0.0, bound_s - (clock() - start))))
        current = read()
        if current is None:
            return Cooling(None, "the thermal zone could not be read while waiting", first, None, clock() - start)
    return Cooling(limit_c, source, first, current, clock() - start, current <= limit_c, bound_s)
