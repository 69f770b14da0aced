"""Cold start (``--cold N``): the runners' load phases and their parsing, fresh processes with the page cache
dropped on the host, the emulated phone that may not drop it, the record, its views, and the command line."""

import dataclasses
import io
import json
import mmap
import shutil
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from rebirth import cli
from rebirth.cli.options import COLD_EXECUTIONS as CLI_COLD_EXECUTIONS
from rebirth.contract import notes
from rebirth.contract.cold import ColdStart, Distribution
from rebirth.contract.notes import Note
from rebirth.contract.profile import Profile
from rebirth.devices import pagecache
from rebirth.devices.adb import DROP_CACHES, AdbDevice
from rebirth.devices.base import RunRequest
from rebirth.devices.emulator import PHONES, EmulatedPhone
from rebirth.devices.inventory import DeviceConfig
from rebirth.devices.local import LocalDevice
from rebirth.devices.runlog import parse_log
from rebirth.profiler.cold import COLD_EXECUTIONS, cold_requests, measure_cold
from rebirth.reports.html import render_html
from rebirth.reports.terminal import render_profile
from rebirth.results import store
from tests.synthetic import synthetic_profile

OLD_NATIVE_LOG = """Threads: 2
Baseline RSS: 5275648 bytes
Model loaded in 3.820719 ms.
Execution 1/2 in 0.974807 ms.
Execution 2/2 in 0.498831 ms.
Model executed successfully 2 time(s) in 1.473638 ms.
Peak RSS: 10649600 bytes
"""
EXECUTORCH_LOG = "Model loaded in 12.5 ms.\nModel executed successfully 3 time(s) in 9.0 ms.\n"


def run_local(device, request, workdir):
    return device.run(request, workdir)


def test_old_logs_still_parse_and_say_no_phases():
    old = parse_log(OLD_NATIVE_LOG)
    assert old.load_ms == 3.820719 and old.execution_ms == (0.974807, 0.498831)
    assert old.program_load_ms is None and old.method_load_ms is None
    upstream = parse_log(EXECUTORCH_LOG)
    assert (upstream.load_ms, upstream.total_ms, upstream.execution_ms) == (12.5, 9.0, ())


@pytest.mark.parametrize("runner", ["native", "python"])
def test_rebirths_runners_say_the_load_phases(runner, firenet_ptes, tmp_path):
    request = RunRequest(firenet_ptes["xnnpack"], iterations=2, warmup=0, etdump=False)
    log = LocalDevice(runner=runner).run(request, tmp_path).log
    assert "Program loaded in" in log.text and "Method loaded in" in log.text
    assert log.program_load_ms is not None and log.method_load_ms is not None and log.load_ms is not None
    assert log.program_load_ms > 0 and log.method_load_ms > 0
    assert log.program_load_ms + log.method_load_ms <= log.load_ms


def test_drop_empties_the_page_cache_of_the_file(firenet_ptes, tmp_path):
    model = tmp_path / "model.pte"
    shutil.copy(firenet_ptes["xnnpack"], model)
    model.read_bytes()
    assert pagecache.resident_bytes(model) == model.stat().st_size
    assert pagecache.drop(model) is None
    assert pagecache.resident_bytes(model) == 0
    if shutil.which("fincore"):  # util-linux reads the same mincore: an independent reader agrees
        listed = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(model)],
                                capture_output=True, text=True, check=True)
        assert listed.stdout.strip() == "0"


def test_drop_says_when_pages_stay_mapped(firenet_ptes, tmp_path):
    model = tmp_path / "model.pte"
    shutil.copy(firenet_ptes["xnnpack"], model)
    with model.open("rb") as file, mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as mapped:
        sum(mapped[offset] for offset in range(0, len(mapped), mmap.PAGESIZE))  # fault every page in
        why = pagecache.drop(model)
    assert why is not None and "stayed in the page cache" in why


def test_cold_start_on_local_is_n_fresh_processes_with_the_cache_dropped(firenet_ptes):
    runs, executions = 3, 4
    cold = measure_cold(LocalDevice(), cold_requests(firenet_ptes["xnnpack"], runs, executions), run_local)
    assert cold.runs == runs and cold.executions == executions
    assert cold.page_cache_flushed and cold.notes == ()
    for label, value in cold.phases():
        assert value is not None and len(value.raw) == runs, label  # every process loaded and ran once
        assert value.low <= value.median <= value.high
    assert len(cold.curve) == executions and cold.first == cold.curve[0]
    assert len(set(cold.load.raw)) > 1  # separate processes, each timed on its own


def test_cold_requests_refuse_nothing_to_run(firenet_ptes):
    with pytest.raises(ValueError):
        cold_requests(firenet_ptes["xnnpack"], 0, 3)


@pytest.fixture(scope="module")
def phone(tmp_path_factory):
    emulated = EmulatedPhone(tmp_path_factory.mktemp("phone"), PHONES["galaxy-s6"]).start()
    yield emulated
    emulated.stop()


def test_the_emulated_phone_is_not_rooted(phone):
    with AdbDevice(DeviceConfig("s6", address=phone.address)) as device:
        assert device.shell("id -u", "probe").output.strip() == "2000"
        assert "__not_root" in device.shell(DROP_CACHES, "flush", check=False).output


def test_cold_start_on_a_phone_that_is_not_rooted_says_so_once(phone, firenet_ptes):
    with AdbDevice(DeviceConfig("s6", address=phone.address)) as device:
        cold = measure_cold(device, cold_requests(firenet_ptes["xnnpack"], 2, 3), run_local)
    assert not cold.page_cache_flushed
    assert [note.text for note in cold.notes] == [
        "page cache not flushed: the phone is not rooted (drop_caches needs root: adb root, or su)"]
    assert cold.program_load is not None and len(cold.program_load.raw) == 2
    assert len(cold.curve) == 3


def test_a_runner_without_phases_leaves_them_out_and_says_why():
    from rebirth.devices.base import RunResult
    from rebirth.profiler.cold import cold_start

    results = [RunResult(None, parse_log(EXECUTORCH_LOG), None, page_cache_flushed=True)] * 2
    cold = cold_start(results, 3)
    assert cold.load is not None and cold.load.median == 12.5
    assert cold.program_load is None and cold.method_load is None and cold.curve == ()
    assert {note.code for note in cold.notes} == {notes.NO_PHASES} and len(cold.notes) == 2


def test_the_record_round_trips_and_older_profiles_load():
    cold = ColdStart(3, 2, Distribution.of([1.0, 2.0, 3.0]), None, Distribution.of([4.0, 5.0, 6.0]),
                     (Distribution.of([1.5, 1.6, 1.7]), Distribution.of([1.0, 1.1, 1.2])), True,
                     (Note(notes.NOT_FLUSHED, "x"),))
    profile = dataclasses.replace(synthetic_profile(ops=20), cold=cold)
    again = Profile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert again.cold == cold and again.cold.first.median == 1.6
    older = profile.to_dict()
    del older["cold"]
    assert Profile.from_dict(older).cold is None


def test_views_show_the_cold_start_escaped():
    cold = ColdStart(2, 2, Distribution.of([0.25, 0.35]), Distribution.of([3.0, 4.0]), Distribution.of([3.5, 4.5]),
                     (Distribution.of([1.0, 1.2]), Distribution.of([0.5, 0.6])), False,
                     (Note(notes.NOT_FLUSHED, "page cache not flushed: <b>rooted?</b>"),))
    profile = dataclasses.replace(synthetic_profile(ops=20), cold=cold)
    page = render_html(profile)
    assert 'id="table-cold"' in page and "3.500 ms [3.000–4.000]" in page
    assert "&lt;b&gt;rooted?&lt;/b&gt;" in page and "<b>rooted?" not in page
    console = Console(file=io.StringIO(), width=200, record=True)
    render_profile(profile, console)
    text = console.export_text()
    assert "cold start: 2 fresh processes, 2 executions each, page cache NOT dropped" in text
    assert "warm-up curve (median of execution 1..2): 1.100, 0.550 ms" in text
    assert "<b>rooted?</b>" in text
    assert "cold" not in render_html(synthetic_profile(ops=20)).split("<main>")[1].split("<section id=\"layers\"")[0]


def test_the_cli_default_matches_the_profiler():
    assert CLI_COLD_EXECUTIONS == COLD_EXECUTIONS


@pytest.mark.parametrize("argv", [["--cold", "0"], ["--cold", "-1"], ["--cold", "2", "--cold-executions", "0"]])
def test_a_cold_count_below_one_is_one_line_and_exit_2(argv, capsys, tmp_path):
    code = cli.profile_main([str(tmp_path / "never-read.pte"), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().count("\n") == 0 and err.startswith(f"rebirth: error: {argv[-2]} {argv[-1]}: give at least 1")


def test_profile_cold_end_to_end_with_a_zoo_model(tmp_path, capsys):
    out = tmp_path / "p.json"
    code = cli.main(["profile", "zoo:googlenet-small", "--iterations", "2", "--warmup", "1", "--cold", "3",
                     "--cold-executions", "2", "--json", str(out), "--html", str(tmp_path / "p.html")])
    printed = capsys.readouterr().out
    assert code == 0
    assert "cold start: 3 fresh processes, 2 executions each" in printed  # the terminal wraps at 80 columns
    cold = Profile.load(out).cold
    assert cold is not None and cold.runs == 3 and len(cold.curve) == 2 and cold.page_cache_flushed
    assert 'id="table-cold"' in (tmp_path / "p.html").read_text()


def test_a_farm_run_with_cold_stores_each_devices_cold_start(phone, firenet_ptes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("devices.toml").write_text(f'[devices.s6]\naddress = "{phone.address}"\n')
    code = cli.main(["farm", "run", str(firenet_ptes["xnnpack"]), "--devices", "local,s6", "--store",
                     str(tmp_path / "results"), "--iterations", "2", "--warmup", "0", "--cold", "2", "-q"])
    assert code == 0
    colds = {run.device: run.profile.cold for run in store.list_runs(tmp_path / "results")}
    assert sorted(colds) == ["local", "s6"]
    assert colds["local"].page_cache_flushed and colds["local"].runs == 2
    assert not colds["s6"].page_cache_flushed and "not rooted" in colds["s6"].notes[0].text
