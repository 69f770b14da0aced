"""The thermal gate and the energy per inference end to end, on an emulated phone with a body (heat from its
runner's work, clocks that throttle above a trip point, a fuel gauge): rebirth reads it over ADB as a phone."""

import math
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from rebirth.contract.notes import THROTTLED, TOO_HOT
from rebirth.contract.paired import Budget
from rebirth.devices.emulator import PHONES, EmulatedPhone, Physics, SleepingRunner
from rebirth.devices.emulator.physics import BATTERY, UNPLUGGED
from rebirth.devices.registry import open_device
from rebirth.profiler import ProfileOptions
from rebirth.profiler.measure import prepare
from rebirth.profiler.paired import compare_programs
from rebirth.usecases.profiling import profile
from tests.test_farm import rebirth

EXECUTION_MS = 5.0
OPTIONS = dict(warmup=2, iterations=300, threads=2)
"""300 executions of 5 ms: a run of 1.5 s, long enough for a gauge read ten times a second."""


@pytest.fixture
def phone_with(tmp_path, monkeypatch):
    """Start an emulated galaxy-s6 with ``Physics(**settings)`` and a sleeping runner, named s6 in a devices.toml
    with ``extra`` lines: returns the phone."""
    started = []
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)

    def start(extra: str = "", phone: str = "galaxy-s6", **settings):
        emulated = EmulatedPhone(tmp_path / f"phone{len(started)}", PHONES[phone],
                                 runner=SleepingRunner(EXECUTION_MS, tmp_path / "recordings"),
                                 physics=Physics(tick_s=0.05, **settings)).start()
        started.append(emulated)
        (cwd / "devices.toml").write_text(f'[devices.s6]\naddress = "{emulated.address}"\n{extra}')
        return emulated

    yield start
    for emulated in started:
        emulated.stop()


@pytest.mark.parametrize("phone", ["galaxy-s6", "pixel-7"])  # mA positive while discharging; µA negative
def test_energy_per_inference_is_the_runners_draw_over_idle(phone_with, firenet_ptes, phone):
    phone_with(phone=phone, plugged=False, noise_ma=10.0)
    result = profile(str(firenet_ptes["xnnpack"]), ProfileOptions(device="s6", **OPTIONS))
    energy = result.energy
    # Two threads sleeping 5 ms each execution: two busy cores draw 2 x 450 mA over idle at 3.85 V.
    expected = 2 * 450 * 3.85 * EXECUTION_MS / 1000
    assert energy is not None and energy.why_not is None, energy
    assert energy.low <= energy.mj_per_inference <= energy.high
    assert math.isclose(energy.mj_per_inference, expected, rel_tol=0.15), (energy, expected)
    assert energy.idle_ma == pytest.approx(300, abs=15) and energy.readings >= 10
    # The runner's work heated the phone; the samples say so.
    assert result.device.temperature_c_peak > 35.0 and result.device.freq_khz_low == max(PHONES[phone].max_freq_khz)


def test_a_charging_phone_gets_no_number_and_one_line_saying_why(phone_with, firenet_ptes, capsys, tmp_path):
    phone_with("cool_below_c = 40\n")  # on USB, charging: as a phone on a farm's hub
    code = rebirth("profile", firenet_ptes["xnnpack"], "--device", "s6", "--warmup", "1", "--iterations", "20",
                   "--html", tmp_path / "report.html")
    out = capsys.readouterr().out
    assert code == 0
    page = (tmp_path / "report.html").read_text()
    assert "energy per inference" in page and "the phone was charging" in page
    assert "35.0 °C, below the 40.0 °C limit (devices.toml)" in page
    said = " ".join(out.split())
    assert said.count("energy: not measured: the phone was charging") == 1 and "adb tcpip 5555" in said, out


def test_unplug_in_the_inventory_measures_a_phone_whose_charger_honours_it(phone_with, firenet_ptes):
    emulated = phone_with("unplug = true\n", noise_ma=10.0)
    result = profile(str(firenet_ptes["xnnpack"]), ProfileOptions(device="s6", **OPTIONS))
    assert result.energy.mj_per_inference is not None, result.energy
    assert not (emulated.sandbox.root / UNPLUGGED).exists()  # dumpsys battery reset after the run


def _during_the_run(emulated: EmulatedPhone, action, after_s: float = 0.6) -> threading.Thread:
    """Do ``action`` once the runner has started and ``after_s`` passed (the idle draw is read before it)."""
    def wait_then_act():
        pids = emulated.sandbox.root / ".physics/pids"
        busy = emulated.sandbox.root / ".physics/busy"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(p.name.isdigit() for p in (*pids.iterdir(), *busy.iterdir())):
            time.sleep(0.02)
        time.sleep(after_s)
        action()

    thread = threading.Thread(target=wait_then_act, daemon=True)
    thread.start()
    return thread


def test_a_gauge_that_vanishes_mid_run_gives_no_number_and_loses_nothing(phone_with, firenet_ptes):
    emulated = phone_with(plugged=False)
    thread = _during_the_run(emulated, lambda: shutil.rmtree(emulated.sandbox.root / BATTERY))
    result = profile(str(firenet_ptes["xnnpack"]), ProfileOptions(device="s6", **OPTIONS))
    thread.join()
    assert result.energy.mj_per_inference is None and "went away" in result.energy.why_not
    assert len(result.latency.raw) == OPTIONS["iterations"]


def test_a_phone_that_starts_charging_mid_run_gives_no_number(phone_with, firenet_ptes):
    emulated = phone_with()
    (emulated.sandbox.root / UNPLUGGED).touch()  # unplugged when the run starts ...
    thread = _during_the_run(emulated, lambda: (emulated.sandbox.root / UNPLUGGED).unlink())  # ... then plugged
    result = profile(str(firenet_ptes["xnnpack"]), ProfileOptions(device="s6", **OPTIONS))
    thread.join()
    assert result.energy.mj_per_inference is None and "charging" in result.energy.why_not


def test_a_hot_phone_is_let_cool_below_its_limit_before_the_run(phone_with, firenet_ptes):
    phone_with("cool_below_c = 40\ncool_wait_s = 60\n", start_c=52.0, tau_s=1.5, heat_per_core_c=2.0)
    result = profile(str(firenet_ptes["xnnpack"]), ProfileOptions(device="s6", **OPTIONS))
    cooling = result.device.cooling
    assert cooling.cooled and cooling.start_c > 45 and cooling.end_c <= 40 and cooling.waited_s > 0.5
    assert cooling.source == "devices.toml" and "cooled from" in cooling.shown()
    # It had throttled while hot; cooled, it ran at full clock and nothing says otherwise.
    assert result.device.freq_khz_low == 2_100_000
    assert not {THROTTLED, TOO_HOT} & {note.code for note in result.noise}


def test_a_phone_too_hot_to_cool_within_the_bound_is_said_so_and_its_blocks_discarded(phone_with, firenet_ptes,
                                                                                      tmp_path):
    import io

    from rich.console import Console

    from rebirth.contract.paired import PairedComparison
    from rebirth.reports.html import render_html
    from rebirth.reports.terminal import render_comparison

    phone_with("cool_below_c = 40\ncool_wait_s = 1\n", start_c=60.0, ambient_c=58.0, tau_s=60.0)
    result = profile(str(firenet_ptes["xnnpack"]), ProfileOptions(device="s6", warmup=1, iterations=10))
    assert not result.device.cooling.cooled
    assert any(note.code == TOO_HOT and "too hot" in note.text for note in result.noise)
    program = prepare(str(firenet_ptes["xnnpack"]), "xnnpack")
    with open_device("s6") as device:
        both = compare_programs(program, program, device, ProfileOptions(device="s6", warmup=1, iterations=10),
                                budget=Budget(max_runs=8, max_seconds=120, min_blocks=2))
    paired = both.comparison
    assert paired.outcome == "undecided" and paired.blocks == 0 and "every block was discarded" in paired.reason
    assert paired.discarded == {"throttled, too hot": 4} or sum(paired.discarded.values()) == 4, paired.discarded
    assert all(run.discarded for run in paired.runs) and "4 blocks discarded" in paired.discarded_shown()
    # Said, saved and read back: no interval to show is not a crash.
    shown = io.StringIO()
    render_comparison(both.a, both.b, paired=paired, console=Console(file=shown, width=100))
    assert "undecided" in shown.getvalue() and "every block was discarded" in " ".join(shown.getvalue().split())
    assert "undecided" in render_html(both.a, both.b, paired=paired)
    paired.save(tmp_path / "comparison.json")
    again = PairedComparison.load(tmp_path / "comparison.json")
    assert (again.low, again.high, again.blocks) == (0.0, math.inf, 0) and again.discarded == paired.discarded


def test_a_block_whose_clocks_fell_is_discarded_and_re_run(phone_with, firenet_ptes):
    emulated = phone_with("cool_below_c = 40\ncool_wait_s = 60\n", tau_s=1.0, heat_per_core_c=2.0)
    body = emulated.sandbox.body
    program = prepare(str(firenet_ptes["xnnpack"]), "xnnpack")
    heated = []

    def heat_once(*_):
        if not heated:
            heated.append(True)
            _during_the_run(emulated, lambda: body.heat(50.0), after_s=0.3)

    emulated.on_request = lambda kind, path: None
    heat_once()
    with open_device("s6") as device:
        paired = compare_programs(program, program, device, ProfileOptions(device="s6", **OPTIONS),
                                  budget=Budget(max_runs=16, max_seconds=300, min_blocks=3)).comparison
    discarded = [run for run in paired.runs if run.discarded]
    assert (discarded and "clocks moved" in discarded[0].discarded) or "throttled" in discarded[0].discarded
    assert paired.blocks >= 3 and paired.decided, paired.reason
    assert 0.97 < paired.ratio < 1.03  # the same program: the throttled block did not move the answer
    assert "discarded and re-run" in paired.reason or paired.discarded_shown()


def test_the_phone_heats_with_its_runners_work(phone_with, firenet_ptes):
    emulated = phone_with(plugged=False, tau_s=2.0)
    start = emulated.sandbox.body.temperature_c
    profile(str(firenet_ptes["xnnpack"]), ProfileOptions(device="s6", **OPTIONS))
    assert emulated.sandbox.body.temperature_c > start + 2.0
    temp = int((Path(emulated.sandbox.root) / "sys/class/thermal/thermal_zone0/temp").read_text())
    assert temp > (start + 2.0) * 1000


def test_the_cli_emulated_phone_has_a_body_a_profile_cools_it_and_measures_energy(firenet_ptes, tmp_path,
                                                                                   monkeypatch):
    import subprocess
    import sys

    from tests.phones import free_port

    port = free_port()
    emulator = subprocess.Popen([sys.executable, "-m", "rebirth", "devices", "emulate", "--port", str(port),
                                 "--root", str(tmp_path / "phone"), "--hot", "48", "--unplugged"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        said = emulator.stdout.readline()
        assert "48 °C, on battery listening on" in said, said
        monkeypatch.chdir(tmp_path)
        (tmp_path / "devices.toml").write_text(f'[devices.s6]\naddress = "127.0.0.1:{port}"\n')
        done = subprocess.run([sys.executable, "-m", "rebirth", "profile", str(firenet_ptes["xnnpack"]), "--device",
                               "s6", "--warmup", "5", "--iterations", "15000", "--threads", "1", "--cool-below",
                               "40", "--cool-wait", "120"], capture_output=True, text=True, timeout=600)
        out = " ".join(done.stdout.split())
        assert done.returncode == 0, done.stderr
        assert re.search(r"device: cooled from 4[78]\.\d to (3\d|40)\.\d °C in \d+ s, below 40\.0 °C \(--cool-below\)",
                         out), out
        assert "energy: " in out and " mJ per inference (95% CI " in out, out
        # Cooled below the point where its clocks come back (43 °C), it ran at full clock.
        assert "while running: clock 2100-2100 MHz" in out and "throttled" not in out, out
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)


def test_a_farm_run_gates_each_phone_and_stores_each_ones_energy(tmp_path, firenet_ptes, monkeypatch, capsys):
    from rebirth.results import store

    phones = [EmulatedPhone(tmp_path / f"phone{index}", PHONES[name], runner=SleepingRunner(EXECUTION_MS,
                                                                                         tmp_path / "recordings"),
                            physics=Physics(tick_s=0.05, plugged=plugged, start_c=start, tau_s=1.0,
                                            heat_per_core_c=2.0)).start()
              for index, (name, plugged, start) in enumerate((("galaxy-s6", False, 50.0), ("pixel-7", True, 35.0)))]
    try:
        monkeypatch.chdir(tmp_path)
        (tmp_path / "devices.toml").write_text(
            f'[devices.s6]\naddress = "{phones[0].address}"\ncool_below_c = 40\n'
            f'[devices.p7]\naddress = "{phones[1].address}"\n[groups]\nlab = ["s6", "p7"]\n')
        code = rebirth("farm", "run", firenet_ptes["xnnpack"], "--group", "lab", "--warmup", "2", "--iterations",
                       "300", "--store", tmp_path / "results")
        out = " ".join(capsys.readouterr().out.split())
    finally:
        for emulated in phones:
            emulated.stop()
    assert code == 0 and "energy" in out, out
    runs = {run.device: run for run in store.list_runs(tmp_path / "results")}
    s6, p7 = runs["s6"], runs["p7"]
    assert s6.summary.energy_mj is not None and s6.summary.energy_mj > 0
    assert s6.profile.device.cooling.cooled and s6.profile.device.cooling.start_c > 45
    assert p7.summary.energy_mj is None and "charging" in p7.profile.energy.why_not
    assert rebirth("results", "list", "--store", tmp_path / "results") == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[-1] == "energy" and any(line.endswith(" mJ") for line in listing[1:])
