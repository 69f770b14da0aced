"""Phone profiles the emulator can impersonate, and its sandboxed file system.

Device paths (``/data/local/tmp/x``, ``/sys/devices/system/cpu/...``) live under one host
folder, the phone's root; a path that leaves the root is refused.
"""

from __future__ import annotations

import os
import platform
import posixpath
import re
import shlex
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from rebirth.devices.emulator.physics import PIDS_DIR, UNPLUGGED, Body, Gauge, Physics


@dataclass(frozen=True)
class PhoneProfile:
    """What ``getprop``, cpufreq and thermal files say about an emulated phone."""

    name: str
    manufacturer: str
    model: str
    device: str
    product: str
    hardware: str
    abi: str
    android: str
    sdk: int
    max_freq_khz: tuple[int, ...]
    temperature_mc: int = 35000
    battery_level: int = 87
    gauge: Gauge = field(default_factory=Gauge)
    """How its fuel gauge reports current (used when the phone has a body: ``Physics``)."""
    extra_props: dict[str, str] = field(default_factory=dict)

    def props(self) -> dict[str, str]:
        return {
            "ro.product.model": self.model, "ro.product.name": self.product, "ro.product.device": self.device,
            "ro.product.manufacturer": self.manufacturer, "ro.hardware": self.hardware,
            "ro.board.platform": self.hardware, "ro.product.cpu.abi": self.abi,
            "ro.product.cpu.abilist": self.abi, "ro.build.version.release": self.android,
            "ro.build.version.sdk": str(self.sdk), "ro.serialno": f"emu-{self.name}",
            "ro.build.fingerprint": f"rebirth/{self.product}/{self.device}:{self.android}/EMU/1:user/release-keys",
            **self.extra_props,
        }


PHONES = {
    "galaxy-s6": PhoneProfile("galaxy-s6", "samsung", "SM-G920F", "zeroflte", "zerofltexx", "samsungexynos7420",
                              "arm64-v8a", "7.0", 24, (1500000,) * 4 + (2100000,) * 4,
                              gauge=Gauge(unit="mA", discharging_negative=False)),
    "pixel-7": PhoneProfile("pixel-7", "Google", "Pixel 7", "panther", "panther", "gs201", "arm64-v8a", "14", 34,
                            (1803000,) * 4 + (2348000,) * 2 + (2850000,) * 2),
}

@dataclass(frozen=True)
class SleepingRunner:
    """An ``executor_runner`` that simulates on-device compute by sleeping (see ``devices.emulator.sleeper``).

    The first run of a model records a real run (rebirth's runner: its log and its ETDump); every
    run then replays that recording, sleeping each execution, and hands back the recorded ETDump,
    so that the host's parsing stays real while phones in one process do not compete for the
    host's cores.
    """

    execution_ms: Optional[float] = None
    """Simulated time of one execution; None: the recorded time of each."""
    recordings: Optional[Path] = None
    """Host folder of the recordings, which phones may share; default: a folder in the phone's root."""


DEVICE_PREFIXES = ("/data", "/sdcard", "/sys", "/system", "/vendor", "/mnt")


ANDROID_ABIS = {"x86_64": "x86_64", "aarch64": "arm64-v8a", "arm64": "arm64-v8a", "i686": "x86"}
"""Android's names for the host's CPU architectures."""


def host_abi() -> str:
    """This host's CPU as an Android ABI name (``x86_64`` on a PC)."""
    return ANDROID_ABIS.get(platform.machine(), platform.machine())


class Sandbox:
    """The phone's file system: a host folder standing for ``/``."""

    def __init__(self, root: Path, phone: PhoneProfile, runner: Optional[SleepingRunner] = None,
                 abi: Optional[str] = None, physics: Optional[Physics] = None):
        """``runner``: a sleeping executor_runner; None: rebirth's native runner, which really computes.

        ``abi``: the phone's ABI; default the host's, and the phone has rebirth's host runner as its
        ``executor_runner``. Another ABI (``arm64-v8a`` on a PC) makes a phone with no runner of its own,
        whose CPU qemu-user emulates: rebirth pushes its arm64-v8a bundle to it as to a real phone.
        """
        self.root = root.resolve()
        self.phone = phone
        self.runner = runner
        self.abi = abi or host_abi()
        self.physics = physics
        """The phone's body (heat, clocks, fuel gauge), or None for fixed readings."""
        self.body: Optional[Body] = None

    @property
    def emulated_cpu(self) -> bool:
        """Binaries for the phone's ABI run under qemu-user here (their timings mean nothing)."""
        return self.abi != host_abi()

    def props(self) -> dict[str, str]:
        """What ``getprop`` answers: the profile's properties with the phone's ABI."""
        emulated = {"ro.kernel.qemu": "1"} if self.emulated_cpu else {}
        return {**self.phone.props(), "ro.product.cpu.abi": self.abi, "ro.product.cpu.abilist": self.abi,
                **emulated}

    def host_path(self, device_path: str) -> Path:
        """The host path of an absolute device path.

        Raises:
            PermissionError: the path leaves the sandbox.
        """
        if not device_path.startswith("/"):
            device_path = "/data/local/tmp/" + device_path
        normal = posixpath.normpath(device_path)
        candidate = (self.root / normal.lstrip("/")).resolve()
        if candidate != self.root and self.root not in candidate.parents:
            raise PermissionError(f"{device_path}: outside the device's file system")
        return candidate

    def rewrite(self, command: str) -> str:
        """Point absolute device paths in a shell command into the sandbox."""
        pattern = r"(?<![\w./])(" + "|".join(re.escape(p) for p in DEVICE_PREFIXES) + r")(?=/|\b)"
        return re.sub(pattern, lambda m: str(self.root) + m.group(1), command)

    def populate(self) -> None:
        """Create the folders, sysfs files and tools a phone of this profile has."""
        for folder in ("data/local/tmp", "sdcard", "system/bin"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        for index, freq in enumerate(self.phone.max_freq_khz):
            cpufreq = self.root / f"sys/devices/system/cpu/cpu{index}/cpufreq"
            cpufreq.mkdir(parents=True, exist_ok=True)
            for name, value in (("cpuinfo_max_freq", freq), ("scaling_cur_freq", freq),
                                ("scaling_governor", "schedutil")):
                (cpufreq / name).write_text(f"{value}\n")
        for zone, temp in enumerate((self.phone.temperature_mc, self.phone.temperature_mc - 2000)):
            thermal = self.root / f"sys/class/thermal/thermal_zone{zone}"
            thermal.mkdir(parents=True, exist_ok=True)
            (thermal / "temp").write_text(f"{temp}\n")
            (thermal / "type").write_text(f"zone{zone}\n")
        if self.physics is not None:
            self.body = Body(self.root, self.phone.max_freq_khz, self.physics, self.phone.gauge)
            self.body.populate()
        self._tool("getprop", self._getprop_script())
        self._tool("dumpsys", self._dumpsys_script())
        self._tool("taskset", TASKSET.replace("#REGISTER", self._register()))
        self._tool("id", SHELL_ID)
        self._tool("su", NO_SU)
        if self.emulated_cpu:
            from rebirth.devices.native import require

            require("qemu-aarch64-static")
        else:
            self._tool("executor_runner", self._runner_script())

    def _tool(self, name: str, body: str) -> None:
        path = self.root / "system/bin" / name
        path.write_text(body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def _getprop_script(self) -> str:
        props = self.props()
        cases = "\n".join(f"  {shlex.quote(k)}) echo {shlex.quote(v)} ;;" for k, v in props.items())
        listing = "\n".join(f"echo {shlex.quote(f'[{k}]: [{v}]')}" for k, v in props.items())
        return f"#!/bin/sh\nif [ $# -eq 0 ]; then\n{listing}\nexit 0\nfi\ncase \"$1\" in\n{cases}\n  *) echo ;;\nesac\n"

    def _runner_script(self) -> str:
        from rebirth.devices.local import host_runner

        python = shlex.quote(sys.executable)
        environment = "PYTHONUNBUFFERED=1"
        runner = host_runner()
        command = " ".join(shlex.quote(part) for part in runner.command)
        if self.runner is not None:
            # Run as a file, not -m: importing the devices.emulator package (numpy) costs more than a sleep.
            sleeper = shlex.quote(str(Path(__file__).with_name("sleeper.py")))
            return ("#!/bin/sh\n# The emulated phone's executor_runner, asleep: replays a recorded run in real time.\n"
                    f"{environment} exec {python} {sleeper} {self._sleeper_flags(runner.command)} \"$@\"\n")
        return (f"#!/bin/sh\n# The emulated phone's executor_runner: rebirth's {runner.kind} runner for this host.\n"
                f"{self._register()}{environment} exec {command} \"$@\"\n")

    def _register(self) -> str:
        """A line that tells the phone's body the process is a runner, whose CPU time heats the phone."""
        if self.physics is None:
            return ""
        return f": > {shlex.quote(str(self.root / PIDS_DIR))}/$$\n"

    def _sleeper_flags(self, runner: tuple[str, ...]) -> str:
        assert self.runner is not None
        recordings = self.runner.recordings or self.root / ".recordings"
        flags = ["--recordings", str(recordings.resolve()), "--runner", " ".join(map(shlex.quote, runner))]
        if self.runner.execution_ms is not None:
            flags += ["--execution_ms", str(self.runner.execution_ms)]
        return " ".join(shlex.quote(flag) for flag in flags)

    def _dumpsys_script(self) -> str:
        def state(usb: str, status: int) -> str:
            return shlex.quote(f"Current Battery Service state:\n  AC powered: false\n  USB powered: {usb}\n"
                               f"  level: {self.phone.battery_level}\n  scale: 100\n  temperature: 300\n"
                               f"  status: {status}\n")

        if self.physics is None:
            return f"#!/bin/sh\nif [ \"$1\" = battery ]; then\nprintf %s {state('true', 2)}\nfi\n"
        # With a body, `dumpsys battery unplug` works as on a phone whose charger honours it: the gauge then
        # reads the battery discharging; `reset` plugs it back. A phone that was never plugged stays unplugged.
        unplugged = shlex.quote(str(self.root / UNPLUGGED))
        plugged = "true" if self.physics.plugged else "false"
        return ("#!/bin/sh\n[ \"$1\" = battery ] || exit 0\n"
                f"case \"$2\" in\n  unplug) : > {unplugged}; exit 0 ;;\n  reset) rm -f {unplugged}; exit 0 ;;\n"
                "esac\n"
                f"if [ {plugged} = true ] && [ ! -e {unplugged} ]; then printf %s {state('true', 2)}; "
                f"else printf %s {state('false', 3)}; fi\n")

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")}
        env.update(PATH=f"{self.root / 'system/bin'}:/usr/local/bin:/usr/bin:/bin",
                   HOME=str(self.root / "data/local/tmp"),
                   ANDROID_ROOT=str(self.root / "system"), REBIRTH_DEVICE_ROOT=str(self.root))
        return env


TASKSET = """#!/bin/sh
# toybox's taskset MASK COMMAND...: the emulated phone's cores are not this host's, so the mask
# is checked as toybox checks it and the command runs on the cores the host gives it.
case "$1" in
  ''|*[!0-9a-fA-Fx]*) echo "taskset: bad mask '$1'" >&2; exit 1 ;;
esac
shift
#REGISTER
exec "$@"
"""

SHELL_ID = """#!/bin/sh
# adb shell on a user-build phone runs as the shell user, not root (this host's user may be root).
case "$1" in
  -u) echo 2000 ;;
  -g) echo 2000 ;;
  -un) echo shell ;;
  *) echo "uid=2000(shell) gid=2000(shell) groups=2000(shell)" ;;
esac
"""

NO_SU = """#!/bin/sh
# A user-build phone has no su (this host's su would make the phone root).
echo "/system/bin/sh: su: inaccessible or not found" >&2
exit 127
"""
