"""What may have moved a profile's numbers besides the model: said beside them, never hidden.

Each check is a threshold on something the run recorded: the spread of its own samples, the CPU time
other processes took while it ran, clocks that changed between its start and its end, throttling.
"""

from __future__ import annotations

from rebirth.contract.device import THROTTLED_BELOW, DeviceInfo
from rebirth.contract.notes import BUSY, CLOCKS_MOVED, THROTTLED, TOO_HOT, WIDE_SPREAD, Note
from rebirth.contract.profile import Latency

MAX_CV = 0.05
"""Coefficient of variation of the measured runs above which a profile is noisy."""
MAX_OTHER_LOAD = 0.15
"""Share of the device's CPU other processes may take during the run."""
MAX_CLOCK_CHANGE = 0.10
"""Relative change of a core's clock between the start and the end of the run."""


def sampled_clock_moved(device: DeviceInfo) -> bool:
    """The clock sampled while the model executed moved by more than ``MAX_CLOCK_CHANGE``."""
    low, high = device.freq_khz_low, device.freq_khz_high
    return bool(low and high and high / low - 1 > MAX_CLOCK_CHANGE)


def sampled_throttled(device: DeviceInfo) -> bool:
    """The clock sampled while the model executed stayed below 90% of its core's maximum."""
    high, top = device.freq_khz_high, device.freq_khz_top
    return bool(high and top and high < THROTTLED_BELOW * top)


def noise_flags(latency: Latency, device: DeviceInfo) -> tuple[Note, ...]:
    """Why a profile's latency may not be the model's alone; empty when nothing says so."""
    flags = []
    if latency.cv > MAX_CV:
        flags.append(Note(WIDE_SPREAD, f"the runs spread widely (CV {latency.cv:.1%} over {len(latency.raw)} runs, "
                                       f"> {MAX_CV:.0%})"))
    if device.other_load is not None and device.other_load > MAX_OTHER_LOAD:
        flags.append(Note(BUSY, f"the device was busy: other work took {device.other_load:.0%} of its CPU during the "
                                "run"))
    moved = [core.index for core in device.cores if core.cur_freq_khz_start and core.cur_freq_khz_end
             and abs(core.cur_freq_khz_end / core.cur_freq_khz_start - 1) > MAX_CLOCK_CHANGE]
    if moved:
        flags.append(Note(CLOCKS_MOVED, f"clocks moved during the run (cores {', '.join(map(str, moved))})"))
    elif sampled_clock_moved(device):
        flags.append(Note(CLOCKS_MOVED, f"clocks moved during the run ({(device.freq_khz_low or 0) / 1000:.0f}-"
                                        f"{(device.freq_khz_high or 0) / 1000:.0f} MHz sampled)"))
    if sampled_throttled(device):
        flags.append(Note(THROTTLED, f"the device ran throttled: its clock was at most "
                                     f"{(device.freq_khz_high or 0) / 1000:.0f} of "
                                     f"{(device.freq_khz_top or 0) / 1000:.0f} MHz"))
    elif device.throttled:
        flags.append(Note(THROTTLED, "the device throttled (a core ended below 90% of its maximum clock)"))
    if device.cooling is not None and not device.cooling.cooled:
        flags.append(Note(TOO_HOT, f"the device was {device.cooling.shown()}"))
    return tuple(flags)
