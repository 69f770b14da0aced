"""A phone's fuel gauge read as it is, and the energy of one inference out of it.

The kernel's power-supply class gives ``current_now`` and ``voltage_now`` under
``/sys/class/power_supply/<battery>/``. Vendors differ, and each reading is normalised here:

- unit: the kernel's ABI says µA (Pixels and most phones); older Samsung kernels report mA. A phone draws
  between about 50 mA and 10 A, so a magnitude below ``MA_BELOW`` is taken as mA, else µA; an inventory's
  ``gauge_unit`` overrides the guess.
- sign: the ABI says negative while discharging; some vendors report the draw as positive. The battery's
  ``status`` file (``Charging`` / ``Discharging`` / ``Not charging`` / ``Full``) decides: while it discharges,
  the draw is the magnitude whatever the sign.
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
    """The battery's ``status`` file: True while the phone is on its charger (``Charging``; ``Full`` and
    ``Not charging`` too: the kernel's words for external power that is not charging the battery, held full or
    at a charge limit, and the phone then runs from the charger), False on battery (``Discharging``), None when
    unknown."""
    if not text:
        return None
    word = text.strip().lower()
    if word in ("charging", "full", "not charging"):
        return True
    if word == "discharging":
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


def run_unit(raws: Sequence[Optional[str]]) -> Optional[str]:
    """The unit of a run's ``current_now`` readings, decided once from their median size (a µA gauge whose
    draw dips under 20 mA for a reading must not read as amperes for it); None when none is a number."""
    sizes = []
    for raw in raws:
        if raw is None:
            continue
        try:
            size = abs(float(raw))
        except ValueError:
            continue
        if math.isfinite(size):
            sizes.append(size)
    if not sizes:
        return None
    return "mA" if statistics.median(sizes) < MA_BELOW else "uA"


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


def readings(samples: Sequence[Sample]) -> list[tuple[float, float]]:
    """``(mA, mW)`` of each new gauge reading (a repeated current is the gauge not having refreshed): the draw,
    and the power at that moment's voltage (which sags under load)."""
    kept: list[tuple[float, float]] = []
    last: Optional[float] = None
    for sample in samples:
        if sample.current_ua is None or sample.current_ua == last:
            continue
        last = sample.current_ua
        if sample.voltage_uv:
            kept.append((sample.current_ua / 1000, sample.current_ua / 1000 * sample.voltage_uv / 1e6))
    return kept


def estimate(idle: Sequence[Sample], run: Sequence[Sample], mean_execution_ms: Optional[float],
             gauge: Optional[str] = None) -> Energy:
    """The energy of one inference: (power while running - power just before) x the mean execution time, with a
    Welch interval on the difference of the two mean powers. The gauge's readings are taken as independent; a
    gauge that averages over a window makes neighbours alike, and the interval then narrower than it should be.
    No number, with the reason, when the phone was on its charger, the gauge went or refreshed too rarely."""
    if not run and not idle:
        return Energy(why_not="the device has no battery fuel gauge it lets rebirth read", gauge=gauge)
    if any(sample.charging for sample in (*idle, *run)):
        return Energy(why_not=f"the phone was charging (on its charger): {UNPLUG_HINT}", gauge=gauge)
    if any(sample.current_ua is None for sample in (*idle, *run)):
        return Energy(why_not="the fuel gauge could not be read through the run (its files went away)",
                      gauge=gauge)
    running, before = readings(run), readings(idle)
    short = []
    if len(running) < MIN_READINGS:
        short.append(f"{len(running)} during the run (a longer run, more --iterations, gives more)")
    if len(before) < MIN_READINGS:
        short.append(f"{len(before)} in the seconds before it (the gauge refreshes too rarely)")
    if short:
        return Energy(why_not=f"the fuel gauge gave too few new readings, at least {MIN_READINGS} each are needed: "
                              + "; ".join(short), gauge=gauge, readings=len(running), idle_readings=len(before))
    if mean_execution_ms is None:
        return Energy(why_not="the runner's time per execution is unknown", gauge=gauge)
    from scipy.special import stdtrit

    run_mw, idle_mw = [mw for _, mw in running], [mw for _, mw in before]
    var_run = statistics.variance(run_mw) / len(run_mw)
    var_idle = statistics.variance(idle_mw) / len(idle_mw)
    # Welch-Satterthwaite degrees of freedom; with no spread at all the interval is the point.
    denominator = (var_run ** 2 / (len(run_mw) - 1) + var_idle ** 2 / (len(idle_mw) - 1)) or 1.0
    freedom = max(1.0, (var_run + var_idle) ** 2 / denominator)
    half = float(stdtrit(freedom, (1 + CONFIDENCE) / 2)) * math.sqrt(var_run + var_idle)

    def mj(milliwatts: float) -> float:
        return max(0.0, milliwatts * mean_execution_ms / 1000)

    difference = statistics.fmean(run_mw) - statistics.fmean(idle_mw)
    voltage = statistics.fmean(mw / ma for ma, mw in (*running, *before) if ma)
    return Energy(mj_per_inference=mj(difference), low=mj(difference - half), high=mj(difference + half),
                  confidence=CONFIDENCE, idle_ma=statistics.fmean(ma for ma, _ in before),
                  run_ma=statistics.fmean(ma for ma, _ in running), voltage_v=voltage,
                  readings=len(running), idle_readings=len(before), gauge=gauge)


def during_executions(samples: Sequence[Sample], load_ms: Optional[float]) -> list[Sample]:
    """The samples taken while the runner executed the model: after its load, to its end (the watcher stops
    looking once the runner has exited; warm-ups and a paired program's executions are inside)."""
    start = (load_ms or 0.0) / 1000
    return [sample for sample in samples if sample.t_s >= start]
