"""A phone's fuel gauge read as it is, and the energy of one inference out of it.

The kernel's power-supply class gives ``current_now`` and ``voltage_now`` under
``/sys/class/power_supply/<battery>/``. Vendors differ, and each reading is normalised here:

- unit: the kernel's ABI says µA (Pixels and most phones); older Samsung kernels report mA. A phone draws
  between about 50 mA and 10 A, so a magnitude below ``MA_BELOW`` is taken as mA, else µA; an inventory's
  ``gauge_unit`` overrides the guess.
- sign: the ABI says negative while discharging; some vendors report the draw as positive. The battery's
  ``status`` file (``Charging`` / ``Discharging`` / ``Not charging`` / ``Full``) decides: while it is not
  charging, the draw is the magnitude whatever the sign.
- voltage: µV by the ABI, mV on a few (below ``MV_BELOW``).
- update rate: gauges refresh from several times a second to once in ten seconds. Repeated readings are the
  same reading, so only changes count as samples.

A phone that is charging (on USB, as a phone over adb usually is) draws from the charger, not the battery: the
gauge then says nothing about the model, and there is no number, with the reason.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Optional

from rebirth.contract.device import Sample
from rebirth.contract.profile import Energy

MA_BELOW = 20_000
"""A ``current_now`` magnitude below this is in mA (20 A in mA; 20 mA in µA is less than any phone draws)."""
MV_BELOW = 100_000
"""A ``voltage_now`` below this is in mV (100 V in mV; 0.1 V in µV is no battery)."""
MIN_READINGS = 3
"""Distinct gauge readings needed during the run and before it for a number."""
CONFIDENCE = 0.95

UNPLUG_HINT = ("measure it unplugged, over Wi-Fi ADB (adb tcpip 5555; adb connect PHONE:5555), or with unplug = "
               "true in devices.toml where the charger honours `dumpsys battery unplug`")


def charging_status(text: Optional[str]) -> Optional[bool]:
    """The battery's ``status`` file: True while it charges (``Full`` on a charger too), None when unknown."""
    if not text:
        return None
    word = text.strip().lower()
    if word in ("charging", "full"):
        return True
    if word in ("discharging", "not charging"):
        return False
    return None


def current_ua(raw: Optional[str], charging: Optional[bool], unit: Optional[str] = None) -> Optional[float]:
    """The draw from the battery in µA, positive while it discharges (``Sample.current_ua``); None when the
    reading is not a number. ``unit``: ``uA`` or ``mA`` when the inventory says; else guessed from the size."""
    try:
        value = float(raw) if raw is not None else math.nan
    except ValueError:
        return None
    if math.isnan(value):
        return None
    scale = 1000.0 if (unit == "mA" or (unit is None and 0 < abs(value) < MA_BELOW)) else 1.0
    magnitude = abs(value) * scale
    return -magnitude if charging else magnitude


def voltage_uv(raw: Optional[str]) -> Optional[float]:
    try:
        value = float(raw) if raw is not None else math.nan
    except ValueError:
        return None
    if math.isnan(value) or value <= 0:
        return None
    return value * 1000.0 if value < MV_BELOW else value


def changes(values: Sequence[float]) -> list[float]:
    """The readings that are new: a gauge that has not refreshed repeats its last value."""
    kept: list[float] = []
    for value in values:
        if not kept or value != kept[-1]:
            kept.append(value)
    return kept


def estimate(idle: Sequence[Sample], run: Sequence[Sample], mean_execution_ms: Optional[float],
             gauge: Optional[str] = None) -> Energy:
    """The energy of one inference: (draw while running - draw just before) x voltage x the mean execution
    time, with a Welch interval on the difference of the two mean currents. No number, with the reason, when
    the phone charged, the gauge went or refreshed too rarely."""
    if not run and not idle:
        return Energy(why_not="the device has no battery fuel gauge it lets rebirth read", gauge=gauge)
    if any(sample.charging for sample in (*idle, *run)):
        return Energy(why_not=f"the phone was charging: {UNPLUG_HINT}", gauge=gauge)
    if any(sample.current_ua is None for sample in (*idle, *run)):
        return Energy(why_not="the fuel gauge could not be read through the run (its files went away)",
                      gauge=gauge)
    run_ua = changes([s.current_ua for s in run if s.current_ua is not None])
    idle_ua = changes([s.current_ua for s in idle if s.current_ua is not None])
    volts = [s.voltage_uv / 1e6 for s in (*run, *idle) if s.voltage_uv]
    if len(run_ua) < MIN_READINGS or len(idle_ua) < MIN_READINGS:
        return Energy(why_not=f"the fuel gauge gave {len(run_ua)} new readings during the run and {len(idle_ua)} "
                              f"before it (at least {MIN_READINGS} each are needed): a longer run (more "
                              "--iterations) gives a number", gauge=gauge, readings=len(run_ua),
                      idle_readings=len(idle_ua))
    if not volts or mean_execution_ms is None:
        return Energy(why_not="the battery's voltage could not be read", gauge=gauge)
    from scipy.special import stdtrit

    voltage = statistics.fmean(volts)
    run_ma, idle_ma = statistics.fmean(run_ua) / 1000, statistics.fmean(idle_ua) / 1000
    var_run = statistics.variance(run_ua) / len(run_ua) / 1e6
    var_idle = statistics.variance(idle_ua) / len(idle_ua) / 1e6
    spread = math.sqrt(var_run + var_idle)
    # Welch-Satterthwaite degrees of freedom; with no spread at all the interval is the point.
    denominator = (var_run ** 2 / (len(run_ua) - 1) + var_idle ** 2 / (len(idle_ua) - 1)) or 1.0
    freedom = max(1.0, (var_run + var_idle) ** 2 / denominator)
    half = float(stdtrit(freedom, (1 + CONFIDENCE) / 2)) * spread
    per_ma = voltage * mean_execution_ms / 1000  # mJ per mA of draw over one inference

    def mj(milliamps: float) -> float:
        return max(0.0, milliamps * per_ma)

    difference = run_ma - idle_ma
    return Energy(mj_per_inference=mj(difference), low=mj(difference - half), high=mj(difference + half),
                  confidence=CONFIDENCE, idle_ma=idle_ma, run_ma=run_ma, voltage_v=voltage,
                  readings=len(run_ua), idle_readings=len(idle_ua), gauge=gauge)


def during_executions(samples: Sequence[Sample], load_ms: Optional[float], total_ms: Optional[float]
                      ) -> list[Sample]:
    """The samples taken while the runner executed the model: after its load, before its end."""
    start = (load_ms or 0.0) / 1000
    end = start + total_ms / 1000 if total_ms else math.inf
    return [sample for sample in samples if start <= sample.t_s <= end]
