"""Profiling on a phone over ADB, against the emulated phone: same Profile as local, plus the
phone's state; pushes only what changed; faults give one clear error and a retry works."""

import json
import os
import re
import resource
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from rebirth import cli
from rebirth.contract.errors import UnauthorizedError, UnreachableError
from rebirth.devices import check_device, list_devices, open_device
from rebirth.devices.adb import AdbDevice
from rebirth.devices.base import RunRequest
from rebirth.devices.emulator import PHONES, EmulatedPhone
from rebirth.devices.emulator.auth import read_keys
from rebirth.devices.emulator.phone import host_abi
from rebirth.devices.inventory import DeviceConfig, load_inventory
from rebirth.devices.transport import AdbShellTransport
from rebirth.models import probe_pte
from rebirth.profiler import ProfileOptions
from rebirth.usecases.profiling import profile
from tests.phones import Phone, free_port, reset_then_start


@pytest.fixture
def phone(tmp_path):
    started = Phone(tmp_path / "phone").start()
    yield started
    started.stop()


@pytest.fixture
def s6(phone, tmp_path, monkeypatch):
    """A working directory whose devices.toml has the smallest possible entry for the phone."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "devices.toml").write_text(f'[devices.s6]\naddress = "{phone.address}"\n')
    monkeypatch.chdir(cwd)
    return load_inventory()["s6"]


OPTIONS = dict(warmup=1, iterations=5, threads=2)


def test_shell_exit_codes_push_and_pull_through_adb_shell(phone, tmp_path):
    transport = AdbShellTransport(phone.address)
    done = transport.shell("echo out; echo err >&2; exit 5", 10)
    assert (done.exit_code, done.output) == (5, "out\nerr\n")
    assert transport.shell("true", 10).exit_code == 0
    data = os.urandom(5 << 20) + b"tail"
    source = tmp_path / "blob"
    source.write_bytes(data)
    transport.push(source, "/data/local/tmp/x/blob", 30)
    assert phone.device_path("/data/local/tmp/x/blob").read_bytes() == data
    transport.pull("/data/local/tmp/x/blob", tmp_path / "back", 30)
    assert (tmp_path / "back").read_bytes() == data
    transport.close()


def test_profile_on_the_phone_equals_local_plus_the_phones_state(s6, firenet_ptes, phone):
    pte = firenet_ptes["xnnpack"]
    local = profile(str(pte), ProfileOptions(device="local", **OPTIONS))
    remote = profile(str(pte), ProfileOptions(device="s6", **OPTIONS))
    assert [(op.name, op.category, op.layer) for op in remote.ops] == \
        [(op.name, op.category, op.layer) for op in local.ops]
    assert remote.memory.planned_bytes == local.memory.planned_bytes
    assert sorted((t.op_type, t.category, t.count) for t in remote.summary.by_op_type) == \
        sorted((t.op_type, t.category, t.count) for t in local.summary.by_op_type)
    assert remote.summary.attributed_share == local.summary.attributed_share == 1.0
    assert len(remote.latency.raw) == len(local.latency.raw) == 5
    assert remote.memory.peak_rss_bytes > remote.memory.baseline_rss_bytes > 0
    device = remote.device
    # The emulated phone runs rebirth's host runner, so it says it is what it runs on: this host's ABI.
    assert (device.name, device.kind, device.product_model, device.abi) == ("s6", "adb", "samsung SM-G920F",
                                                                           host_abi())
    assert device.runner_kind == "external" and remote.warnings == ()
    assert device.os == "Android 7.0 (SDK 24)" and device.serial == "emu-galaxy-s6"
    assert [core.max_freq_khz for core in device.cores] == list(PHONES["galaxy-s6"].max_freq_khz)
    assert all(core.cur_freq_khz_start and core.cur_freq_khz_end and core.governor for core in device.cores)
    assert device.temperature_c_start == device.temperature_c_end == 35.0 and device.throttled is False
    assert (remote.settings.cpu_affinity, remote.settings.threads) == ("f0", 2)
    # Nothing is left of the run on the phone but the model, kept for the next run.
    assert list(phone.device_path("/data/local/tmp/rebirth/runs").iterdir()) == []
    assert [p.name for p in phone.device_path("/data/local/tmp/rebirth/models").iterdir()] == [pte.name]


def test_the_model_is_pushed_again_only_when_it_changed(s6, firenet_copy, phone):
    pte = firenet_copy["portable"]
    options = ProfileOptions(device="s6", warmup=0, iterations=1)

    def pushes():
        return [path for kind, path in phone.requests if kind == "SEND"]

    profile(str(pte), options)
    assert len(pushes()) == 1 and pushes()[0].startswith("/data/local/tmp/rebirth/models/firenet_portable.pte")
    profile(str(pte), options)
    assert len(pushes()) == 1
    remote = phone.device_path(f"/data/local/tmp/rebirth/models/{pte.name}")
    remote.write_bytes(remote.read_bytes()[:-1] + b"\0")  # what is on the phone no longer matches
    profile(str(pte), options)
    assert len(pushes()) == 2 and remote.read_bytes() == pte.read_bytes()


def test_the_cli_profiles_on_s6_and_writes_the_json(s6, firenet_ptes, capsys):
    code = cli.profile_main(["--device", "s6", str(firenet_ptes["xnnpack"]), "--warmup", "1", "--iterations", "3",
                             "--json", "p.json", "-q"])
    assert code == 0, capsys.readouterr().err
    saved = json.loads(Path("p.json").read_text())
    assert saved["device"]["product_model"] == "samsung SM-G920F" and len(saved["latency_ms"]["raw"]) == 3


def test_inventory_settings_are_used_unless_the_command_line_says_otherwise(s6, firenet_ptes):
    Path("devices.toml").write_text(f'[devices.s6]\naddress = "{s6.address}"\nwarmup = 0\niterations = 2\n'
                                    'cpu_mask = "30"\nthreads = 1\n')
    result = profile(str(firenet_ptes["portable"]), ProfileOptions(device="s6"))
    assert (result.settings.warmup, result.settings.iterations) == (0, 2)
    assert (result.settings.cpu_affinity, result.settings.threads) == ("30", 1)
    result = profile(str(firenet_ptes["portable"]), ProfileOptions(device="s6", iterations=3, threads=2))
    assert (result.settings.iterations, result.settings.threads) == (3, 2)


@pytest.mark.parametrize("step", ["push", "run", "pull"])
def test_a_phone_that_disappears_gives_one_clear_error_and_a_retry_works(s6, firenet_copy, phone, capsys, step):
    pte = firenet_copy["xnnpack"]
    if step == "push":
        phone.on_request = lambda kind, path: kind == "SEND" and phone.stop()
    elif step == "pull":
        phone.on_request = lambda kind, path: kind == "RECV" and phone.stop()
    argv = ["--device", "s6", str(pte), "--warmup", "1", "--iterations", "3", "--json", "p.json"]
    if step == "run":
        from rebirth.devices import adb

        original = adb.AdbDevice._execute

        def vanish_mid_run(self, *args, **kwargs):
            progress = args[-1]
            args = args[:-1] + (lambda stage, done, total: (stage == "run" and phone.stop(),
                                                            progress and progress(stage, done, total)),)
            return original(self, *args, **kwargs)

        adb.AdbDevice._execute = vanish_mid_run
    try:
        code = cli.profile_main(argv)
    finally:
        if step == "run":
            adb.AdbDevice._execute = original
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("rebirth:")]
    assert code == 3 and len(lines) == 1 and "Traceback" not in err, err
    assert f"s6 ({phone.address}) failed during {step}" in lines[0]
    assert not Path("p.json").exists()
    phone.on_request = None
    runs = phone.device_path("/data/local/tmp/rebirth/runs")
    left = list(runs.iterdir()) if runs.exists() else []
    assert len(left) == (0 if step == "push" else 1)  # the lost run's folder: nobody could remove it
    _wait_for_orphans(runs)  # the runner the lost connection left behind may still write there, as on a phone
    for folder in left:
        os.utime(folder, (0, 0))  # ... until it is an hour old
    phone.start()  # the phone comes back on the same address
    assert cli.profile_main(argv + ["-q"]) == 0
    assert json.loads(Path("p.json").read_text())["device"]["name"] == "s6"
    assert list(runs.iterdir()) == []  # the next run removes stale folders and its own


def _wait_for_orphans(folder: Path, timeout_s: float = 120) -> None:
    """Until no process started in or pointed at ``folder`` is left (a lost shell's runner keeps running)."""
    import time

    import psutil

    def orphans():
        found = []
        for process in psutil.process_iter(["cmdline", "cwd"]):
            text = " ".join(process.info["cmdline"] or []) + " " + (process.info["cwd"] or "")
            if str(folder) in text and process.pid != os.getpid():
                found.append(process)
        return found

    deadline = time.monotonic() + timeout_s
    while orphans() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_an_unreachable_phone_is_one_line_and_exit_3(s6, firenet_ptes, phone, capsys):
    phone.stop()
    started = time.monotonic()
    code = cli.profile_main(["--device", "s6", str(firenet_ptes["portable"]), "-q"])
    took = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 3 and err.count("\n") == 1 and "connection refused" in err and "s6" in err
    # tried a few times with growing waits, within the bound of about ten seconds
    assert re.search(rf"cannot connect to {phone.address} after [3-6] attempts in \d+\.\d s \(", err), err
    assert 1.0 < took < 60, took


def test_a_phone_that_starts_listening_a_moment_late_is_reached(tmp_path):
    phone = Phone(tmp_path / "phone")
    threading.Timer(1.0, phone.start).start()  # adbd comes up after the connect began
    started = time.monotonic()
    try:
        transport = AdbShellTransport(phone.address)
        assert transport.shell("echo hi", 30).output == "hi\n"
        assert time.monotonic() - started >= 0.9 and len(phone.emulator.connections) == 1
        transport.close()
    finally:
        phone.stop()


def test_a_bridge_that_resets_the_first_connects_is_reached(tmp_path):
    phone = Phone(tmp_path / "phone")
    bridge = reset_then_start(phone, resets=2)
    try:
        transport = AdbShellTransport(phone.address)
        assert transport.shell("getprop ro.product.model", 30).output.strip() == "SM-G920F"
        bridge.join(5)
        assert not bridge.is_alive() and len(phone.emulator.connections) == 1
        transport.close()
    finally:
        phone.stop()


def test_paths_with_shell_characters_stay_paths(phone, tmp_path):
    device = AdbDevice(DeviceConfig("s6", address=phone.address))
    canary = phone.device_path("/data/local/tmp/pwned")
    weird = tmp_path / "m $(touch pwned) `touch pwned`; touch pwned 'q\".pte"
    weird.write_bytes(b"model bytes")
    remote = f"/data/local/tmp/rebirth/models/{weird.name}"
    assert device.push_if_changed(weird, remote) is True
    assert device.push_if_changed(weird, remote) is False  # same sha256: not pushed again
    assert phone.device_path(remote).read_bytes() == b"model bytes"
    assert not canary.exists()
    device.close()


def test_a_runner_named_in_the_inventory_is_pushed_and_used(s6, firenet_ptes, tmp_path, phone):
    runner = Path("my_runner")
    runner.write_text("#!/bin/sh\necho 'custom runner here'\nexec executor_runner \"$@\"\n")
    runner.chmod(0o755)
    Path("devices.toml").write_text(f'[devices.s6]\naddress = "{s6.address}"\nrunner = "my_runner"\n')
    result = profile(str(firenet_ptes["portable"]), ProfileOptions(device="s6", warmup=0, iterations=1))
    assert result.device.runner == "/data/local/tmp/rebirth/bin/executor_runner"
    pushed = phone.device_path("/data/local/tmp/rebirth/bin/executor_runner")
    assert pushed.read_text() == runner.read_text() and pushed.stat().st_mode & stat.S_IXUSR


def test_check_finds_a_runner_built_without_the_event_tracer(s6, phone):
    assert [(item.name, item.ok) for item in check_device("s6", probe_pte)] == \
        [("reachable", True), ("authorized", True), ("runner", True), ("event tracer", True)]
    # A runner that writes no ETDump, as executor_runner built without -DEXECUTORCH_ENABLE_EVENT_TRACER=ON.
    Path("no_tracer").write_text("#!/bin/sh\nexec executor_runner \"$@\" --no_etdump\n")
    Path("devices.toml").write_text(f'[devices.s6]\naddress = "{s6.address}"\nrunner = "no_tracer"\n')
    items = check_device("s6", probe_pte)
    assert items[-1].name == "event tracer" and not items[-1].ok
    assert "-DEXECUTORCH_ENABLE_EVENT_TRACER=ON" in items[-1].detail
    assert cli.main(["devices", "check", "s6"]) == 3


def test_a_phone_without_a_runner_says_how_to_get_one(s6, phone):
    (phone.device_path("/system/bin/executor_runner")).unlink()
    items = check_device("s6")
    assert items[-1].name == "runner" and not items[-1].ok and "docs/phones.md" in items[-1].detail


def test_devices_list_shows_status(s6, phone, capsys):
    Path("devices.toml").write_text(f'[devices.s6]\naddress = "{s6.address}"\n'
                                    f'[devices.gone]\naddress = "127.0.0.1:{free_port()}"\n')
    rows = {row.name: row for row in list_devices(timeout_s=2.0)}
    assert rows["local"].status == "ready"
    assert (rows["s6"].status, rows["s6"].detail) == ("ready", "SM-G920F")
    assert rows["gone"].status == "unreachable" and "connection refused" in rows["gone"].detail
    assert cli.main(["devices", "info", "s6"]) == 0
    out = capsys.readouterr().out
    assert "samsungexynos7420" in out and "2100" in out and "Android 7.0" in out and "87%" in out


def test_authentication_with_this_computers_key(tmp_path, monkeypatch, firenet_ptes):
    from rebirth.devices.keys import ensure_key, key_path

    messages = []
    key = ensure_key(say=messages.append)
    assert key == key_path() and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert str(key) in messages[0] and "PRIVATE KEY" not in messages[0]
    phone = Phone(tmp_path / "phone", keys=read_keys([key.with_suffix(".pub")])).start()
    try:
        device = AdbDevice(DeviceConfig("s6", address=phone.address))
        assert device.shell("getprop ro.product.model", "test").output.strip() == "SM-G920F"
        device.close()
        stranger = tmp_path / "stranger" / "adbkey"
        ensure_key(stranger, say=lambda text: None)
        locked = AdbDevice(DeviceConfig("s6", address=phone.address, key=stranger, auth_timeout_s=1.0))
        connections = len(phone.emulator.connections)
        with pytest.raises(UnauthorizedError) as error:
            locked.shell("true", "test")
        assert "did not authorize" in str(error.value) and "stranger/adbkey.pub" in str(error.value)
        assert "PRIVATE" not in str(error.value) and "attempt" not in str(error.value)
        assert len(phone.emulator.connections) == connections + 1  # a refused key is not tried again
    finally:
        phone.stop()


def test_listening_beyond_loopback_needs_auth(tmp_path, capsys):
    with pytest.raises(ValueError):
        EmulatedPhone(tmp_path, PHONES["pixel-7"], host="0.0.0.0")
    assert cli.main(["devices", "emulate", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "--auth" in capsys.readouterr().err


def test_an_interrupted_pull_leaves_no_partial_file(phone, tmp_path):
    device = AdbDevice(DeviceConfig("s6", address=phone.address))
    phone.device_path("/data/local/tmp/big").write_bytes(os.urandom(4 << 20))
    phone.on_request = lambda kind, path: kind == "RECV" and phone.stop()
    with pytest.raises(UnreachableError):
        device.pull("/data/local/tmp/big", tmp_path / "big", 4 << 20)
    assert list(tmp_path.iterdir()) == [tmp_path / "phone"]
    shutil.rmtree(tmp_path / "phone")


def test_the_runners_whole_cpu_time_is_counted_and_its_usage_asked_once(s6, firenet_ptes, phone, tmp_path):
    """The run's CPU time is read once the runner is reaped (its children's included, not the poller's last look
    at the runner alone), and a runner's --help is asked once per runner bytes, not before every run."""
    burn = "i=0; while [ $i -lt 400000 ]; do i=$((i + 1)); done"
    burn_ticks = min(_cpu_ticks(["/bin/sh", "-c", burn]) for _ in range(3))  # the least a sibling core's load gave
    Path("burner").write_text("#!/bin/sh\n"
                              "case \"$*\" in *--help*) echo asked >> \"$(dirname \"$0\")/asked\";; esac\n"
                              f"( {burn} )\n"  # a child of the runner: its CPU time is the run's too
                              "exec executor_runner \"$@\"\n")
    Path("burner").chmod(0o755)
    Path("devices.toml").write_text(f'[devices.s6]\naddress = "{s6.address}"\nrunner = "burner"\n')
    for _ in range(2):
        device = open_device("s6")
        try:
            result = device.run(RunRequest(firenet_ptes["portable"].resolve(), iterations=2, warmup=0), tmp_path)
        finally:
            device.close()
        assert result.runner_cpu_ticks is not None and result.runner_cpu_ticks >= 0.6 * burn_ticks, \
            (result.runner_cpu_ticks, burn_ticks)
    assert phone.device_path("/data/local/tmp/rebirth/bin/asked").read_text() == "asked\n"


def _cpu_ticks(command: list[str]) -> float:
    """The CPU time ``command`` took, in clock ticks: more when a CPU hog shares its core (measured up to 1.5x)."""
    started = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True)
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (ended.ru_utime + ended.ru_stime - started.ru_utime - started.ru_stime) * os.sysconf("SC_CLK_TCK")
