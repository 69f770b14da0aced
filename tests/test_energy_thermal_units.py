"""The fuel gauge's readings normalised, the energy estimate, the thermal gate's wait and the emulated phone's
body, on numbers and files: no runner."""

import math
import time

import pytest

from rebirth.contract.device import Cooling, DeviceInfo, DeviceState, Sample
from rebirth.contract.notes import CLOCKS_MOVED, TOO_HOT
from rebirth.contract.profile import Latency
from rebirth.devices import energy, thermal
from rebirth.devices.emulator.physics import BATTERY, BUSY_DIR, UNPLUGGED, Body, Gauge, Physics
from rebirth.devices.phonestate import parse_snapshot, safe_supply, sampler
from rebirth.profiler.noise import noise_flags


@pytest.mark.parametrize(("raw", "status", "unit", "expected"), [
    ("-450000", "Discharging", None, 450_000.0),   # the kernel's ABI: µA, negative while discharging
    ("450000", "Discharging", None, 450_000.0),    # a vendor that reports the draw positive
    ("450", "Discharging", None, 450_000.0),       # older Samsung kernels: mA
    ("-450", "Not charging", None, -450_000.0),   # on external power, the battery held: not the model's draw
    ("1200000", "Charging", None, -1_200_000.0),   # into the battery: negative draw
    ("15000", "Discharging", "uA", 15_000.0),      # the inventory says µA: a 15 mA draw is not 15 A
    ("15000", "Discharging", None, 15_000_000.0),
    ("-", "Discharging", None, None),
    ("abc", "Discharging", None, None),
])
def test_gauge_current_is_normalised_to_microamps_drawn(raw, status, unit, expected):
    charging = energy.charging_status(status)
    value = energy.current_ua(None if raw == "-" else raw, charging, unit)
    assert value == expected


def test_a_runs_unit_is_decided_once_from_its_readings():
    # A µA gauge whose draw dips under 20 mA for one reading stays µA for it.
    assert energy.run_unit(["-15000", "-250000", "-260000", None, "-"]) == "uA"
    assert energy.run_unit(["450", "-", "300", "800"]) == "mA" and energy.run_unit([None, "-"]) is None
    assert energy.current_ua("-15000", False, "uA") == 15_000.0


def test_gauge_voltage_and_status():
    assert energy.voltage_uv("3850000") == 3_850_000 and energy.voltage_uv("3850") == 3_850_000
    assert energy.voltage_uv("0") is None and energy.voltage_uv("x") is None
    assert [energy.charging_status(s) for s in ("Charging", "Full", "Discharging", "Not charging", "Unknown", None)] \
        == [True, True, False, True, None, None]


def _samples(values_ma, start, step=0.1, volts=3.8, charging=False):
    return [Sample(start + i * step, current_ua=value * 1000, voltage_uv=volts * 1e6, charging=charging)
            for i, value in enumerate(values_ma)]


def test_energy_is_the_draw_over_idle_times_voltage_and_time():
    idle = _samples([300, 302, 298, 301, 299], -0.5)
    run = _samples([800, 805, 795, 802, 798, 800], 0.1)
    result = energy.estimate(idle, run, mean_execution_ms=10.0)
    # (800 - 300) mA at 3.8 V for 10 ms = 1.9 W x 10 ms = 19 mJ
    assert result.mj_per_inference == pytest.approx(19.0, rel=0.01)
    assert result.low < 19.0 < result.high and result.high - result.low < 1.0
    assert (result.readings, result.idle_readings) == (6, 5) and result.why_not is None
    assert "19 mJ per inference" in result.shown()


def test_a_gauge_that_repeats_itself_counts_once_per_new_reading():
    idle = _samples([300] * 10, -1.0)  # refreshed once in the whole idle window
    run = _samples([800] * 5 + [810] * 5, 0.1)
    result = energy.estimate(idle, run, 10.0)
    assert result.mj_per_inference is None and (result.readings, result.idle_readings) == (2, 1)
    assert "new readings" in result.why_not and "--iterations" in result.why_not


def test_no_number_while_charging_or_when_the_gauge_went_away():
    idle = _samples([300, 301, 299], -0.3)
    charging = energy.estimate(idle, _samples([800, 801, 799], 0.1, charging=True), 10.0)
    assert charging.mj_per_inference is None and "charging" in charging.why_not
    assert "adb tcpip" in charging.why_not and "dumpsys battery unplug" in charging.why_not
    gone = _samples([800, 801], 0.1) + [Sample(0.3)]
    vanished = energy.estimate(idle, gone, 10.0)
    assert vanished.mj_per_inference is None and "went away" in vanished.why_not
    assert "no battery" in energy.estimate([], [], 10.0).why_not


def test_the_run_window_starts_after_the_load():
    samples = [Sample(t) for t in (-0.5, 0.0, 0.05, 0.2, 0.5, 0.9, 1.3)]
    kept = energy.during_executions(samples, load_ms=100.0)
    assert [s.t_s for s in kept] == [0.2, 0.5, 0.9, 1.3]


def test_cool_waits_until_below_the_limit_and_no_longer_than_the_bound():
    now = [0.0]
    readings = iter([50.0, 47.0, 44.0, 41.5, 39.0, 38.0])

    def sleep(seconds):
        now[0] += seconds

    cooled = thermal.cool(lambda: next(readings), 40.0, "devices.toml", 60.0, sleep, lambda: now[0], poll_s=2.0)
    assert cooled.cooled and (cooled.start_c, cooled.end_c) == (50.0, 39.0) and cooled.waited_s == 8.0
    assert "cooled from 50.0 to 39.0 °C in 8 s" in cooled.shown()
    now[0] = 0.0
    hot = thermal.cool(lambda: 47.0, 40.0, "devices.toml", 5.0, sleep, lambda: now[0], poll_s=2.0)
    assert not hot.cooled and hot.waited_s == 5.0 and "too hot: 47.0 °C after waiting 5 s" in hot.shown()
    assert thermal.cool(lambda: None, 40.0, "x", 5.0, sleep, lambda: now[0]).limit_c is None


def test_the_limit_is_learned_from_the_lowest_idle_reading():
    key = "emu-learned"
    assert thermal.limit_for(key, None, "devices.toml")[0] is None
    for reading in (41.0, 36.5, 39.0):
        thermal.remember(key, reading)
    limit, source = thermal.limit_for(key, None, "devices.toml")
    assert limit == 36.5 + thermal.MARGIN_C and "learned: idle 36.5 °C" in source
    assert thermal.limit_for(key, 33.0, "devices.toml") == (33.0, "devices.toml")
    for _ in range(thermal.IDLE_HISTORY):
        thermal.remember(key, 45.0)  # the old idle ages out
    assert thermal.limit_for(key, None, "x")[0] == 45.0 + thermal.MARGIN_C
    # A quartile, not the coldest moment ever: one cold reading does not set the limit for good ...
    stale = "emu-stale"
    for reading in (30.0, 40.0, 40.5, 41.0, 41.5, 42.0):
        thermal.remember(stale, reading)
    assert thermal.learned_idle(stale) == pytest.approx(37.5)
    # ... and readings expire: a warmer room moves the idle back up.
    later = time.time() + thermal.IDLE_MAX_AGE_S + 60
    thermal.remember(stale, 44.0, now=later)
    assert thermal.learned_idle(stale, now=later) == 44.0


def test_the_sampled_core_is_the_fastest_pinned_one():
    from rebirth.contract.device import CoreState
    from rebirth.devices.phonestate import fastest_core

    pixel = tuple(CoreState(i, f) for i, f in enumerate((1_803_000,) * 4 + (2_348_000,) * 2 + (2_850_000,) * 2))
    assert fastest_core("3f", pixel) == 5 and fastest_core(None, pixel) == 7 and fastest_core("f", pixel) == 3
    assert fastest_core(None, ()) is None


def test_a_run_too_hot_or_with_moving_clocks_is_flagged():
    latency = Latency.from_samples((10.0, 10.1, 10.0, 9.9))
    device = DeviceInfo("s6", "adb").with_run(DeviceState(), DeviceState(), samples=(
        Sample(0.1, freq_khz=2_100_000), Sample(0.2, freq_khz=1_260_000)),
        cooling=Cooling(40.0, "devices.toml", 50.0, 47.0, 5.0, False, 5.0))
    codes = [note.code for note in noise_flags(latency, device)]
    assert CLOCKS_MOVED in codes and TOO_HOT in codes
    steady = DeviceInfo("s6", "adb").with_run(DeviceState(), DeviceState(), samples=(
        Sample(0.1, freq_khz=2_100_000), Sample(0.2, freq_khz=2_000_000)))
    assert noise_flags(latency, steady) == ()


def test_the_snapshot_finds_the_battery_and_the_sampler_reads_only_safe_paths():
    snapshot = parse_snapshot("cpu 0 2100000 2100000 schedutil\nzone 0 41000 cpu\nzone 1 39000 skin\n"
                              "supply usb USB -\nsupply battery Battery Discharging\n")
    assert snapshot.battery == "/sys/class/power_supply/battery" and snapshot.battery_status == "Discharging"
    assert snapshot.hottest_zone() == 0
    script = sampler(0, 7, snapshot.battery)
    assert "/sys/class/power_supply/battery/current_now" in script and "thermal_zone0/temp" in script
    assert "cpu7/cpufreq/scaling_cur_freq" in script and "current_now" not in sampler(0, 7, None)
    assert not safe_supply("/sys/class/power_supply/x; rm -rf /")
    assert "rm -rf" not in sampler(0, 7, "/sys/class/power_supply/x; rm -rf /")


def _body(tmp_path, **physics):
    (tmp_path / "sys/devices/system/cpu/cpu0/cpufreq").mkdir(parents=True)
    for zone in (0, 1):
        (tmp_path / f"sys/class/thermal/thermal_zone{zone}").mkdir(parents=True)
    body = Body(tmp_path, (2_100_000,), Physics(**physics))
    body.populate()
    return body


def _read(tmp_path, path):
    return (tmp_path / path).read_text().strip()


def test_the_body_heats_with_busy_cores_throttles_and_cools(tmp_path):
    body = _body(tmp_path, tau_s=1.0, heat_per_core_c=20.0, trip_c=45.0, release_c=43.0, noise_ma=0.0,
                 plugged=False)
    busy = tmp_path / BUSY_DIR / "1"  # pid 1 is alive: the sleeping runner's busy milliseconds
    for step in range(1, 41):
        busy.write_text(str(step * 100.0))  # one core busy all the time (100 ms per 0.1 s tick)
        body.step(0.1)
    assert body.temperature_c > 45.0 and body.throttled
    assert _read(tmp_path, "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq") == str(int(2_100_000 * 0.6))
    assert int(_read(tmp_path, "sys/class/thermal/thermal_zone0/temp")) == round(body.temperature_c * 1000)
    # Busy: the gauge draws idle + one core, in the profile's µA, negative while discharging.
    assert int(_read(tmp_path, BATTERY + "/current_now")) == -(300 + 450) * 1000
    for _ in range(60):
        body.step(0.1)
    assert body.temperature_c < 43.0 and not body.throttled
    assert _read(tmp_path, "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq") == "2100000"
    assert int(_read(tmp_path, BATTERY + "/current_now")) == -300_000
    assert _read(tmp_path, BATTERY + "/status") == "Discharging"


def test_the_gauge_in_a_vendors_units_and_the_charger(tmp_path):
    body = Body(tmp_path, (2_100_000,), Physics(noise_ma=0.0, plugged=True),
                Gauge(unit="mA", discharging_negative=False))
    (tmp_path / "sys/devices/system/cpu/cpu0/cpufreq").mkdir(parents=True)
    body.populate()
    # On USB: the charger feeds the battery, which a draw-positive vendor reports negative.
    assert _read(tmp_path, BATTERY + "/status") == "Charging"
    assert int(_read(tmp_path, BATTERY + "/current_now")) == -(1500 - 300)
    (tmp_path / UNPLUGGED).touch()  # dumpsys battery unplug
    body.step(0.1)
    assert _read(tmp_path, BATTERY + "/status") == "Discharging"
    assert int(_read(tmp_path, BATTERY + "/current_now")) == 300
    value = energy.current_ua(_read(tmp_path, BATTERY + "/current_now"), False)
    assert value is not None and math.isclose(value, 300_000)
