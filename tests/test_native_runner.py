"""rebirth's native runner: built once and atomically, the fallback when it cannot be, the arm64 bundle
pushed to a phone that has no runner and run under qemu on the emulated arm64 phone, and the ways a
runner fails to start or dies, each said in one line."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rebirth import cli
from rebirth.devices import runlog
from rebirth.devices.native import build
from rebirth.profiler import ProfileOptions
from rebirth.usecases.profiling import profile
from tests.phones import Phone

ROOT = Path(__file__).resolve().parent.parent


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("rebirth:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def without(monkeypatch):
    """Make tools look uninstalled: ``without("g++")``."""
    missing: set[str] = set()
    which = shutil.which
    monkeypatch.setattr(build.shutil, "which", lambda tool: None if tool in missing else which(tool))
    return missing.add


def test_two_processes_building_at_once_build_one_runner(tmp_path):
    code = "from rebirth.devices.native import host_runner; print(host_runner())"
    env = dict(os.environ, REBIRTH_CACHE=str(tmp_path / "cache"))
    started = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    paths = {process.communicate(timeout=300)[0].strip() for process in started}
    assert all(process.returncode == 0 for process in started) and len(paths) == 1
    runner = Path(paths.pop())
    folder = runner.parent.parent
    assert sorted(path.name for path in folder.iterdir() if not path.name.endswith(".lock")) == [runner.parent.name]
    usage = subprocess.run([str(runner), "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and "--model_path" in usage.stdout


def test_without_a_compiler_the_python_runner_profiles_and_the_profile_says_so(firenet_ptes, without):
    without("g++")
    result = profile(str(firenet_ptes["portable"]), ProfileOptions(warmup=1, iterations=2))
    assert result.device.runner_kind == "python" and result.device.runner.endswith("-m rebirth.devices.runner")
    assert [note.code for note in result.warnings] == ["python_runner"]
    assert "g++ is not installed: apt-get install g++" in result.warnings[0].text
    assert result.summary.attributed_share >= 0.95


@pytest.mark.parametrize("argv, package", [
    (["devices", "runner", "build", "--abi", "arm64-v8a"], "g++-aarch64-linux-gnu"),
    (["devices", "emulate", "--abi", "arm64-v8a", "--port", "0"], "qemu-user-static"),
])
def test_a_missing_tool_is_one_line_naming_its_package(argv, package, without, capsys):
    for tool in build.PACKAGES:
        without(tool)
    assert cli.main(argv) == 2
    assert f"apt-get install {package}" in one_error_line(capsys.readouterr().err)


@pytest.fixture
def arm64_phone(tmp_path, monkeypatch):
    """An emulated phone with an arm64-v8a CPU under qemu and no runner of its own, named in the smallest
    devices.toml there is."""
    phone = Phone(tmp_path / "phone", abi="arm64-v8a").start()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "devices.toml").write_text(f'[devices.s6]\naddress = "{phone.address}"\n')
    monkeypatch.chdir(cwd)
    yield phone
    phone.stop()


def test_an_arm64_phone_gets_rebirths_runner_once_and_profiles_under_qemu(arm64_phone, firenet_ptes, capsys):
    pte = firenet_ptes["xnnpack"]
    argv = ["--device", "s6", str(pte), "--warmup", "1", "--iterations", "2", "--json", "s6.json", "-q"]
    assert cli.profile_main(argv) == 0, capsys.readouterr().err
    pushed = arm64_phone.pushes()
    bundle = {path.rsplit("/", 1)[-1] for path in pushed if "/bin/rebirth-arm64-v8a/" in path}
    assert bundle == set(build.arm64_bundle().files) and len(pushed) == len(bundle) + 1  # + the model
    saved = json.loads(Path("s6.json").read_text())
    device = saved["device"]
    assert (device["abi"], device["kind"], device["runner_kind"]) == ("arm64-v8a", "emulated", "native")
    assert [warning["code"] for warning in saved["warnings"]] == ["emulated"]
    assert "emulated (qemu)" in capsys.readouterr().err  # said, even with -q
    local = profile(str(pte), ProfileOptions(warmup=1, iterations=2))
    assert [(op["category"], op["layer"]) for op in saved["ops"]] == [(op.category, op.layer) for op in local.ops]
    assert saved["summary"]["attributed_share"] == local.summary.attributed_share == 1.0
    assert cli.profile_main(argv) == 0
    assert arm64_phone.pushes() == pushed  # the second run pushes nothing


def test_a_phone_of_another_abi_without_a_runner_is_one_line_naming_it(tmp_path, monkeypatch, firenet_ptes, capsys):
    phone = Phone(tmp_path / "phone", abi="armeabi-v7a").start()
    try:
        monkeypatch.chdir(tmp_path)
        Path("devices.toml").write_text(f'[devices.old]\naddress = "{phone.address}"\n')
        assert cli.profile_main(["--device", "old", str(firenet_ptes["portable"]), "-q"]) == 2
        line = one_error_line(capsys.readouterr().err)
        assert "armeabi-v7a" in line and "runner = " in line
    finally:
        phone.stop()


def test_a_runner_killed_by_a_signal_is_named_and_no_profile_is_written(tmp_path, monkeypatch, firenet_ptes, capsys):
    phone = Phone(tmp_path / "phone").start()
    try:
        monkeypatch.chdir(tmp_path)
        Path("crash").write_text("#!/bin/sh\nkill -SEGV $$\n")
        Path("devices.toml").write_text(f'[devices.s6]\naddress = "{phone.address}"\nrunner = "crash"\n')
        code = cli.profile_main(["--device", "s6", str(firenet_ptes["portable"]), "--json", "p.json", "-q"])
        assert code == 3 and "killed by SIGSEGV (signal 11)" in one_error_line(capsys.readouterr().err)
        assert not Path("p.json").exists()
    finally:
        phone.stop()


def test_a_bundle_missing_a_library_says_which(tmp_path, firenet_ptes):
    """The bundle run for real under qemu with one library gone: the diagnosis names it."""
    broken = tmp_path / "bundle"
    shutil.copytree(build.arm64_bundle().folder, broken)
    (broken / "libexecutorch_etdump.so").unlink()
    done = subprocess.run(["sh", str(broken / build.LAUNCHER), "--model_path", str(firenet_ptes["portable"])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert runlog.diagnose(done.stdout + done.stderr, done.returncode) == \
        "a library it needs is missing on the device: libexecutorch_etdump.so"


@pytest.mark.parametrize("output, code, expected", [
    ("/system/bin/sh: ./executor_runner: Exec format error\n", 126, "not built for this device's ABI"),
    ("Error: this device is x86_64, not arm64: the arm64-v8a runner cannot run here\n", 126, "the device is x86_64"),
    ("", 159, "seccomp filter stopped the runner"),
    ("Bad system call\n", 159, "seccomp filter stopped the runner"),
    ("Model loaded in 1.0 ms.\n", 0, None),
])
def test_why_a_runner_did_not_start(output, code, expected):
    found = runlog.diagnose(output, code)
    assert found is None if expected is None else expected in found


def test_signals_are_named_from_python_and_shell_exit_statuses():
    assert runlog.signal_of(-9) == "SIGKILL (signal 9)"
    assert runlog.signal_of(139) == "SIGSEGV (signal 11)"
    assert runlog.signal_of(3) is None and runlog.signal_of(0) is None
