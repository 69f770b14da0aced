"""scripts/setup-host, the README's set-up step, run against a PATH of our making: a temporary bin folder
with stand-ins for the tools that are "present", and stand-ins for apt-get and sudo that only record how
they were called. Nothing is installed: the stand-in apt-get answers as Debian's would."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "setup-host"
BASH = shutil.which("bash") or "/bin/bash"
PACKAGES = {"adb", "chromium", "g++", "g++-aarch64-linux-gnu", "qemu-user-static", "npm"}
UTILITIES = ("sed", "grep", "paste", "head", "env")
"""What the script runs besides bash's builtins when it installs (the dry run needs none of them)."""

APT_GET = """#!{bash}
echo "apt-get $*" >> {log}
case "$*" in
  *--simulate*npm*) echo 'nodejs : Conflicts: npm'
                    echo 'E: Unable to correct problems, you have held broken packages.'; exit 100 ;;
  *--simulate*) echo "Inst $3 (1.0 Debian:12/stable [amd64])" ;;
esac
"""
SUDO = """#!{bash}
echo "sudo $*" >> {log}
exec "$@"
"""


def stand_in(folder: Path, name: str, text: str = "#!/bin/sh\nexit 0\n") -> None:
    path = folder / name
    path.write_text(text)
    path.chmod(0o755)


def host(tmp_path: Path, present: tuple[str, ...]) -> tuple[dict[str, str], Path]:
    """An environment whose PATH has only ``present`` (as stand-ins), recording apt-get and sudo; its log."""
    folder = tmp_path / "bin"
    folder.mkdir()
    log = tmp_path / "calls.log"
    for name in present:
        stand_in(folder, name)
    stand_in(folder, "apt-get", APT_GET.format(bash=BASH, log=log))
    stand_in(folder, "sudo", SUDO.format(bash=BASH, log=log))
    for name in UTILITIES:
        (folder / name).symlink_to(shutil.which(name))
    return dict(os.environ, PATH=str(folder)), log


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BASH, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)


def planned(output: str) -> set[str]:
    """The packages the plan installs: its ``install PACKAGE: why`` lines."""
    lines = [line.removeprefix("setup-host: ") for line in output.splitlines()]
    return {line.split()[1].rstrip(":") for line in lines if line.startswith("install ")}


def test_the_dry_run_plans_exactly_the_missing_tools_and_changes_nothing(tmp_path):
    env, log = host(tmp_path, ("adb", "g++", "npm"))
    done = run(env, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert planned(done.stdout) == {"chromium", "g++-aarch64-linux-gnu", "qemu-user-static"}, done.stdout
    assert "would run apt-get update, then install chromium g++-aarch64-linux-gnu qemu-user-static" in done.stdout
    for present in ("adb", "g++", "npm"):
        assert f"have    {present} ({tmp_path / 'bin' / present})" in done.stdout
    assert not log.exists()  # neither apt-get nor sudo was called


def test_npm_is_planned_only_when_no_npm_is_on_path(tmp_path):
    env, _ = host(tmp_path, ("npm",))
    with_npm = run(env, "--dry-run")
    (tmp_path / "bin" / "npm").unlink()
    without_npm = run(env, "--dry-run")
    assert "npm" not in planned(with_npm.stdout)
    assert planned(without_npm.stdout) - planned(with_npm.stdout) == {"npm"}
    assert planned(without_npm.stdout) == PACKAGES


def test_any_name_of_a_tool_counts_and_a_full_host_needs_nothing(tmp_path):
    env, log = host(tmp_path, ("adb", "chromium-browser", "g++", "aarch64-linux-gnu-g++", "qemu-aarch64-static",
                               "npm"))
    done = run(env)  # not a dry run: with everything present it must not even update apt's lists
    assert done.returncode == 0, done.stderr
    assert planned(done.stdout) == set()
    assert "every tool is on PATH; nothing to do" in done.stdout
    assert not log.exists()


def test_an_install_updates_once_installs_each_missing_package_and_skips_a_conflicting_one(tmp_path):
    env, log = host(tmp_path, ("adb", "chromium", "g++", "aarch64-linux-gnu-g++"))
    done = run(env)
    assert done.returncode == 1  # npm was not installed, and the script says so
    calls = [line for line in log.read_text().splitlines() if line.startswith("apt-get ")]  # as apt-get saw them
    assert calls.count("apt-get update -qq") == 1
    installs = [call.split()[-1] for call in calls if call.startswith("apt-get install -y")]
    assert installs == ["qemu-user-static"]  # not adb, chromium or the compilers, which are there; not npm
    assert "skip    npm: it conflicts with what is installed (nodejs : Conflicts: npm" in done.stderr
    assert "not installed: npm" in done.stderr


@pytest.mark.parametrize("option", ["--dry-run", "-h"])
def test_the_options_need_no_root(tmp_path, option):
    env, log = host(tmp_path, ())
    done = run(env, option)
    assert done.returncode == 0 and done.stdout
    assert not log.exists()


def test_an_unknown_option_is_one_line_and_exit_2(tmp_path):
    env, _ = host(tmp_path, ())
    done = run(env, "--yes")
    assert done.returncode == 2
    assert done.stderr == "setup-host: unknown option --yes (see --help)\n"
