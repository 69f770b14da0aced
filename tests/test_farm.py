"""The device farm and its result store: parallel runs on emulated phones, one killed halfway; race-free,
crash-safe run files; results list; baselines; which devices a farm run means."""

import contextlib
import dataclasses
import io
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rebirth import cli
from rebirth.contract.errors import ConfigError, UnknownDeviceError, UnreachableError
from rebirth.contract.profile import Profile
from rebirth.contract.stored import device_fingerprint
from rebirth.devices.adb import AdbDevice
from rebirth.devices.emulator import PHONES, EmulatedPhone, SleepingRunner, sleeper
from rebirth.devices.farm import resolve_targets
from rebirth.devices.inventory import read_inventory
from rebirth.devices.registry import open_device
from rebirth.profiler import ProfileOptions
from rebirth.results import store
from rebirth.usecases.farm import FarmSession, Targets, farm_run
from tests.synthetic import device_run, synthetic_profile


def rebirth(*argv) -> int:
    """``rebirth ARGV`` as typed."""
    return cli.main([str(arg) for arg in argv])


@pytest.fixture
def inventory(tmp_path, monkeypatch):
    """Write the working directory's devices.toml."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)

    def write(text: str) -> Path:
        (cwd / "devices.toml").write_text(text)
        return cwd / "devices.toml"

    return write


WARMUP, ITERATIONS = 1, 5


@pytest.fixture(scope="module")
def recordings(tmp_path_factory, firenet_ptes):
    """One real run of FireNet (portable) recorded for sleeping runners: they replay it, sleeping 20 ms an execution."""
    folder = tmp_path_factory.mktemp("recordings")
    argv = ["--recordings", folder, "--execution_ms", "0", "--model_path", firenet_ptes["portable"],
            "--num_executions", WARMUP + ITERATIONS, "--etdump_path", folder / "replayed.etdp"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert sleeper.main([str(arg) for arg in argv]) == 0
    (folder / "replayed.etdp").unlink()
    return folder


def sleeping_phone(root: Path, recordings: Path, phone: str = "galaxy-s6") -> EmulatedPhone:
    return EmulatedPhone(root, PHONES[phone], runner=SleepingRunner(20.0, recordings))


@pytest.fixture
def three_phones(tmp_path, inventory, recordings):
    phones = [sleeping_phone(tmp_path / f"phone{index}", recordings).start() for index in range(3)]
    inventory("".join(f'[devices.p{index}]\naddress = "{phone.address}"\n' for index, phone in enumerate(phones))
              + '[groups]\nlab = ["p0", "p1", "p2"]\n')
    yield phones
    for phone in phones:
        phone.stop()


def files_in(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


# -- the farm ------------------------------------------------------------------------------------

def test_a_farm_run_with_a_phone_killed_halfway_stores_two_results_and_reports_the_third(
        three_phones, firenet_ptes, tmp_path, capsys):
    killed = three_phones[2]
    killed.on_request = lambda kind, path: kind == "RECV" and killed.stop()  # gone while its ETDump comes back
    results = tmp_path / "results"
    code = rebirth("farm", "run", firenet_ptes["portable"], "--group", "lab", "--warmup", WARMUP, "--iterations",
                   ITERATIONS, "--store", results, "-q", "--summary", tmp_path / "summary.md")
    out, err = capsys.readouterr()
    assert code == 3, err
    summary = (tmp_path / "summary.md").read_text().splitlines()
    assert summary[0] == "**rebirth farm run: NO ANSWER: 2 of 3 devices profiled, 1 failed**"
    rows = [line.split("|")[1:-1] for line in summary if line.startswith("| p")]
    assert [(cells[0].strip(), cells[-1].strip()) for cells in rows] == [("p0", "ok"), ("p1", "ok"), ("p2", "failed")]
    assert all(len(line) <= 80 for line in summary if line.startswith("|"))
    assert any(line.startswith("- `p2` failed: p2 (") for line in summary)
    errors = [line for line in err.splitlines() if line.startswith("rebirth:")]
    assert len(errors) == 1 and errors[0].startswith("rebirth: error: p2 failed: p2 (") and "during pull" in errors[0]
    assert "Traceback" not in err
    runs = store.list_runs(results)
    assert sorted(run.device for run in runs) == ["p0", "p1"]
    for run in runs:
        assert isinstance(run.profile, Profile) and len(run.profile.latency.raw) == ITERATIONS
        assert run.profile.model.source == str(firenet_ptes["portable"])
        assert run.fingerprint == device_fingerprint(run.profile.device) and f"/{run.number:04d}" in out
    assert [run.number for run in runs] == [1, 2]  # one fingerprint (three identical phones): one numbering
    assert files_in(results) == ["rebirth.sqlite", "rebirth.sqlite.lock"]  # closed: no write-ahead log left
    assert "FAILED" in out and "p2" in out


def test_a_phone_killed_mid_run_fails_alone_and_the_others_finish(tmp_path, inventory, firenet_ptes, recordings):
    phones = [sleeping_phone(tmp_path / f"phone{index}", recordings, "pixel-7").start() for index in range(3)]
    targets = tuple(phone.address for phone in phones)  # remote endpoints, as STF's "remote connect" gives them

    class KillHalfway:
        def begin(self, devices):
            pass

        def stage(self, device, stage):
            pass

        def progress(self, device, stage, done, total):
            if device == targets[1] and stage == "run" and done == total // 2:
                phones[1].stop()

        def finished(self, run):
            pass

    try:
        options = ProfileOptions(warmup=WARMUP, iterations=ITERATIONS)
        runs = farm_run(str(firenet_ptes["portable"]), Targets(targets), tmp_path / "results", options, KillHalfway())
    finally:
        for phone in phones:
            phone.stop()
    assert [run.ok for run in runs] == [True, False, True]
    assert "during run" in runs[1].error and runs[1].result is None
    stored = {run.where: run for run in store.list_runs(tmp_path / "results")}
    assert sorted(stored) == sorted([runs[0].result.where, runs[2].result.where])
    assert [stored[run.result.where].profile.device.name for run in (runs[0], runs[2])] == [targets[0], targets[2]]


def test_the_sleeping_runner_replays_the_recorded_run_in_real_time(tmp_path, inventory, firenet_ptes, recordings):
    phone = sleeping_phone(tmp_path / "phone", recordings).start()
    inventory(f'[devices.s6]\naddress = "{phone.address}"\n')
    from rebirth.profiler import ProfileOptions
    from rebirth.usecases.profiling import profile

    made = {path.name: path.stat().st_mtime_ns for path in recordings.iterdir()}
    options = ProfileOptions("s6", warmup=WARMUP, iterations=ITERATIONS)
    try:
        first = profile(str(firenet_ptes["portable"]), options)
        start = time.monotonic()
        again = profile(str(firenet_ptes["portable"]), options)
        took = time.monotonic() - start
    finally:
        phone.stop()
    assert sorted(Path(name).suffix for name in made) == [".etdp", ".log"]
    assert {path.name: path.stat().st_mtime_ns for path in recordings.iterdir()} == made  # replayed, not recorded
    assert took >= (WARMUP + ITERATIONS) * 0.020
    assert again.latency.raw == first.latency.raw and len(again.latency.raw) == ITERATIONS  # the recorded ETDump
    assert [op.name for op in again.ops] == [op.name for op in first.ops]


class Quiet:
    """A farm listener that records what it is told."""

    def __init__(self):
        self.finished_runs = []

    def begin(self, devices):
        self.devices = list(devices)

    def stage(self, device, stage):
        pass

    def progress(self, device, stage, done, total):
        pass

    def finished(self, run):
        self.finished_runs.append(run.device)


def test_a_session_reports_expected_failures_and_raises_bugs(three_phones):
    def job(device):
        if device.name == "p1":
            raise UnreachableError("p1: gone\nsecond line")
        if device.name == "bug":
            raise ZeroDivisionError("a bug")
        return device.name.upper()

    listener = Quiet()
    with FarmSession(Targets(group="lab"), listener) as session:
        outcomes = session.run(job)
    assert [(o.device, o.result, o.error) for o in outcomes] == [("p0", "P0", None), ("p1", None, "p1: gone"),
                                                                 ("p2", "P2", None)]
    assert listener.devices == ["p0", "p1", "p2"] and sorted(listener.finished_runs) == ["p0", "p1", "p2"]
    with FarmSession(Targets(("p0", "p2")), listener) as session, pytest.raises(ZeroDivisionError):
        session.run(lambda device: 1 / 0)


def test_ctrl_c_aborts_every_device_and_ends_every_worker_before_the_session_ends(firenet_ptes):
    """The runs stop at once (their runners killed), no worker thread is left, and the caller gets the
    interruption: nothing goes on using a device the session has let go."""
    import os
    import signal

    from rebirth.profiler import prepare, profile_program
    from rebirth.usecases.farm import Interrupted

    program = prepare(str(firenet_ptes["portable"]), "portable")
    started = threading.Event()

    def job(device):
        started.set()
        return profile_program(program, device, ProfileOptions(warmup=0, iterations=100_000))

    timer = threading.Thread(target=lambda: (started.wait(60) and time.sleep(0.5)) or os.kill(os.getpid(),
                                                                                          signal.SIGINT))
    timer.start()
    begun = time.monotonic()
    with pytest.raises(Interrupted), FarmSession(Targets(("local",)), Quiet()) as session:
        session.run(job)
    timer.join()
    assert time.monotonic() - begun < 30
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("farm-") and thread.is_alive()]


# -- which devices -------------------------------------------------------------------------------

def test_devices_come_from_names_all_groups_remote_endpoints_and_an_adb_server(inventory):
    inventory('[devices.s6]\naddress = "127.0.0.1:5555"\n[devices.pixel7]\naddress = "127.0.0.1:5556"\n'
              '[groups]\nlab = ["pixel7", "s6", "pixel7"]\nmixed = ["s6", "10.0.0.5:7401", "adb:emulator-5554"]\n')
    assert resolve_targets(["s6", "stf.example:7401", "adb:R58M", "s6"]) == ["s6", "stf.example:7401", "adb:R58M"]
    assert resolve_targets(all_devices=True) == ["s6", "pixel7"]
    assert resolve_targets(group="lab") == ["pixel7", "s6"]
    assert resolve_targets(group="mixed") == ["s6", "10.0.0.5:7401", "adb:emulator-5554"]
    remote = open_device("10.0.0.5:7401")
    assert isinstance(remote, AdbDevice) and remote.transport.target == "10.0.0.5:7401"
    served = open_device("adb:emulator-5554")
    assert served.config.transport == "adb-server" and served.transport.target == "adb server: emulator-5554"
    for bad, words in ((["s7"], "unknown device 's7'"), (["host:port"], "not a device name, host:port"),
                       (["adb:"], "needs the serial")):
        with pytest.raises(UnknownDeviceError, match=words):
            resolve_targets(bad)
    with pytest.raises(UnknownDeviceError, match="unknown group 'farm'.*has lab, mixed"):
        resolve_targets(group="farm")


@pytest.mark.parametrize("body, words", [
    ('[groups]\nlab = ["s7"]\n', "[groups] lab: 's7' is not a device of [devices]"),
    ('[groups]\nlab = "s6"\n', "must be a non-empty list of device names"),
    ('[groups]\nlab = []\n', "must be a non-empty list"),
    ('[groups]\n"l a b" = ["s6"]\n', "cannot name a group"),
    ('[groups]\nlab = ["s6", "x:port"]\n', "[groups] lab: not a device name, host:port or adb:SERIAL"),
    ("groups = 3\n", "expected only [devices.NAME] tables, a [groups], an [stf] and a [local] table"),
])
def test_a_wrong_group_is_a_one_line_config_error(inventory, capsys, body, words):
    path = inventory(body + '[devices.s6]\naddress = "127.0.0.1:5555"\n')
    with pytest.raises(ConfigError) as error:
        read_inventory()
    assert words in str(error.value) and str(path) in str(error.value)
    assert rebirth("farm", "run", "m.pte", "--all") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err


def test_an_unknown_device_or_model_exits_2_before_any_device_is_used(inventory, capsys, tmp_path):
    inventory('[devices.s6]\naddress = "127.0.0.1:5555"\n')
    assert rebirth("farm", "run", "m.pte", "--devices", "s6,s7") == 2
    assert "unknown device 's7'" in capsys.readouterr().err
    assert rebirth("farm", "run", tmp_path / "missing.pte", "--devices", "s6") == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_concurrent_quiet_blocks_leave_the_process_streams_as_they_were():
    from rebirth.contract.quiet import quiet

    stdout, stderr = sys.stdout, sys.stderr
    barrier = threading.Barrier(4)

    def silenced(index):
        with quiet():
            barrier.wait()
            print("noise")
            time.sleep(0.01 * index)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(silenced, range(4)))
    assert (sys.stdout, sys.stderr) == (stdout, stderr)
    with contextlib.redirect_stdout(io.StringIO()) as seen:
        print("heard")
    assert seen.getvalue() == "heard\n"


def test_regress_catches_a_slowdown_passes_an_unchanged_run_and_reports_a_missing_device(tmp_path, capsys):
    import xml.etree.ElementTree as ElementTree

    baseline_store, today = tmp_path / "baseline-store", tmp_path / "today"
    for name in ("p1", "p2", "p3"):
        for seed in (11, 12, 13, 1):  # earlier runs: the store learns each phone's run-to-run noise from them
            store.save_run(device_run(name, seed=seed), baseline_store)
    assert rebirth("baseline", "save", "main", "--store", baseline_store) == 0
    for name in ("p1", "p2", "p3"):
        store.save_run(device_run(name, seed=2), today)  # another day, the same speed
    assert rebirth("regress", "--baseline", "main", "--store", baseline_store, today, "--junit",
                   tmp_path / "ok.xml") == 0
    store.save_run(device_run("p2", seed=3, factor=1.10), today)  # a commit made p2 10% slower
    capsys.readouterr()
    assert rebirth("regress", "--baseline", "main", "--store", baseline_store, today, "--fail", "p50:5%",
                   "--junit", tmp_path / "slow.xml", "--summary", tmp_path / "summary.md") == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "regression" in out and "p2" in out
    summary = (tmp_path / "summary.md").read_text().splitlines()
    assert summary[0].startswith("**rebirth regress: REGRESSION: 3 checks on 3 devices (")
    assert [line.split("|")[1].strip() for line in summary if "| regression" in line] == ["p2"]
    suites = ElementTree.parse(tmp_path / "slow.xml").getroot()
    failures = [(suite.get("name"), case.get("name")) for suite in suites.iter("testsuite")
                for case in suite.iter("testcase") if case.find("failure") is not None]
    assert failures == [("p2", "p50:5%")]
    # p3's phone was unreachable today: only p1 and p2 were stored.
    partial = tmp_path / "partial"
    for name in ("p1", "p2"):
        store.save_run(device_run(name, seed=4), partial)
    assert rebirth("regress", "--baseline", "main", "--store", baseline_store, partial, "--junit",
                   tmp_path / "partial.xml") == 3
    errors = [(suite.get("name"), case.find("error").get("message"))
              for suite in ElementTree.parse(tmp_path / "partial.xml").getroot().iter("testsuite")
              for case in suite.iter("testcase") if case.find("error") is not None]
    assert errors == [("p3", "no result: the run failed or was not made")]


@pytest.mark.parametrize("args, message", [
    (["--fail", "p50:fast"], "bad check"),
    (["--baseline-is-missing"], None),
    (["--store", "nowhere"], "no baseline 'main'"),
])
def test_regress_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    if message is None:
        with pytest.raises(SystemExit) as exit_info:
            rebirth("regress", *args)
        assert exit_info.value.code == 2
        return
    store.save_run(device_run("p1", seed=1), tmp_path / "s")
    rebirth("baseline", "save", "main", "--store", tmp_path / "s")
    capsys.readouterr()
    argv = ["regress", "--baseline", "main", "--store", tmp_path / "s", *args]
    if args[0] == "--store":
        argv = ["regress", "--baseline", "main", *[str(tmp_path / a) if a == "nowhere" else a for a in args],
                tmp_path / "s"]
    assert rebirth(*argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_every_phone_of_the_latest_farm_run_is_judged_not_only_the_last_stored(tmp_path):
    """Four phones of one model share a fingerprint: a farm run on them is judged on all four (one verdict
    each), and an earlier farm run's phones of that model are not judged again."""
    from rebirth.usecases.regress import regress_stored

    def phone(name, seed):
        return synthetic_profile(ops=40, samples=40, source="zoo:googlenet", device=name, seed=seed)

    store.save_run(phone("a", 1), tmp_path, batch="main-run")
    store.save_baseline(tmp_path, "main")
    for seed, name in enumerate(("a", "b"), 2):
        store.save_run(phone(name, seed), tmp_path, batch="earlier")
    for seed, name in enumerate(("c", "d", "e", "f"), 4):
        store.save_run(phone(name, seed), tmp_path, batch="latest")
    assert len({run.fingerprint for run in store.list_runs(tmp_path)}) == 1
    verdicts = regress_stored(tmp_path, "main", checks=["p50:50%"])
    assert sorted(verdict.device for verdict in verdicts) == ["c", "d", "e", "f"]
    assert [run.batch for run in store.runs_to_judge(store.list_runs(tmp_path))] == ["latest"] * 4
    # runs stored before batches were kept are judged as before: the latest of each fingerprint and model
    store.save_run(phone("g", 9), tmp_path)
    assert [verdict.device for verdict in regress_stored(tmp_path, "main", checks=["p50:50%"])] == ["g"]


def test_regress_on_stored_runs_flagged_busy_never_calls_a_38_percent_change(tmp_path, capsys):
    """Issue 25's farm: every stored run flagged busy, and a build with ~20% more work judged an improvement of
    38%. A flagged run decides no latency check: exit 3, the run and its flag named."""
    from rebirth.contract.notes import BUSY, Note

    def flagged(profile):
        return dataclasses.replace(profile, noise=(Note(BUSY, "the device was busy: other work took 89% of its CPU "
                                                              "during the runs"),))

    baseline_store, today = tmp_path / "baseline-store", tmp_path / "today"
    for seed in (11, 12, 13, 1):
        store.save_run(flagged(device_run("p1", seed=seed)), baseline_store)
    assert rebirth("baseline", "save", "main", "--store", baseline_store) == 0
    store.save_run(flagged(device_run("p1", seed=3, factor=0.62)), today)
    capsys.readouterr()
    assert rebirth("regress", "--baseline", "main", "--store", baseline_store, today, "--fail", "p50:5%") == 3
    out = " ".join(capsys.readouterr().out.split())
    assert "improvement" not in out and "undecided" in out
    assert "the baseline was flagged: the device was busy" in out and "the current run was flagged" in out
