"""What `rebirth devices list|info|check|emulate` ask of the devices: which there are and whether they
answer, what one is, whether it can be profiled, and an emulated phone to try it all on."""

from __future__ import annotations

import dataclasses
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rebirth.contract.device import CheckItem, DeviceReport, DeviceStatus
from rebirth.contract.errors import InputError, UnauthorizedError, UnreachableError
from rebirth.devices.base import ProbeModel
from rebirth.devices.inventory import DeviceConfig
from rebirth.devices.registry import DEFAULT_DEVICE, open_device

LIST_TIMEOUT_S = 3.0


def list_devices(timeout_s: float = LIST_TIMEOUT_S) -> list[DeviceStatus]:
    """``local``, every inventory device with whether it answers, and the phones an adb server knows.

    Raises:
        ConfigError: the inventory is wrong.
    """
    from rebirth.devices.adbserver import server_devices
    from rebirth.devices.inventory import load_inventory

    inventory = load_inventory()
    rows = [DeviceStatus(DEFAULT_DEVICE, "local", "this host", "ready")]
    with ThreadPoolExecutor(max_workers=8) as pool:
        rows += list(pool.map(lambda config: _probe(config, timeout_s), inventory.values()))
    targets = {config.address or config.serial for config in inventory.values()}
    for entry in server_devices():
        if entry.serial not in targets:
            rows.append(DeviceStatus(entry.serial, "adb server", entry.serial, entry.state, entry.model or ""))
    return rows


def _probe(config: DeviceConfig, timeout_s: float) -> DeviceStatus:
    from rebirth.devices.adb import AdbDevice

    with AdbDevice(dataclasses.replace(config, auth_timeout_s=min(config.auth_timeout_s, timeout_s))) as device:
        try:
            model = device.shell("getprop ro.product.model", "list", timeout_s=timeout_s).output.strip()
            return DeviceStatus(config.name, "adb", config.target, "ready", model)
        except UnauthorizedError:
            return DeviceStatus(config.name, "adb", config.target, "unauthorized",
                                "accept this computer's key on the phone")
        except UnreachableError as error:
            return DeviceStatus(config.name, "adb", config.target, "unreachable", str(error).split(": ", 1)[-1])


def device_report(name: str) -> DeviceReport:
    """`rebirth devices info`: identity, SoC, cores, clocks, temperatures, battery.

    Raises:
        UnknownDeviceError, ConfigError: no such device, or a wrong inventory.
        DeviceError: the phone did not answer.
    """
    with open_device(name) as device:
        return device.report()


def check_device(name: str, probe: Optional[ProbeModel] = None) -> list[CheckItem]:
    """`rebirth devices check`: reachable, authorized, runner present, and (given ``probe``, which
    returns a small .pte) a probe run that proves the runner writes an ETDump.

    Raises:
        UnknownDeviceError, ConfigError: no such device, or a wrong inventory.
    """
    with open_device(name) as device:
        return device.check(probe)


@dataclass(frozen=True)
class EmulatorOptions:
    phone: str = "galaxy-s6"
    port: int = 5555
    host: str = "127.0.0.1"
    root: Optional[Path] = None
    """The phone's file system; default: a new temporary folder."""
    auth: bool = False
    authorized_keys: tuple[Path, ...] = ()
    """``adbkey.pub``-style files of the keys let in with ``auth``; default: this user's key."""
    abi: Optional[str] = None
    """The phone's ABI: default this host's (the phone runs rebirth's host runner, timings faithful to the
    host); ``arm64-v8a`` on a PC makes a phone whose CPU qemu-user emulates, with no runner of its own."""
    body: bool = True
    """Heat from its runners' work, clocks that throttle, a fuel gauge (``devices.emulator.physics``); False:
    fixed readings."""
    start_c: Optional[float] = None
    """The temperature it starts at (a hot phone); default: the ambient 35 °C."""
    plugged: bool = True
    """On USB, charging (no energy per inference) until ``dumpsys battery unplug``; False: on battery."""


def build_runner(abi: str, say=lambda text: None) -> tuple[Path, int]:
    """`rebirth devices runner build`: rebirth's runner for ``abi`` (``host`` or ``arm64-v8a``), built now
    if it is not cached; its path (the runner, or the bundle's folder) and size in bytes.

    Raises:
        InputError: an ABI rebirth builds no runner for, or a missing compiler.
    """
    from rebirth.devices.native import ARM64, arm64_bundle, host_runner

    if abi == "host":
        path = host_runner()
        return path, path.stat().st_size
    if abi == ARM64:
        bundle = arm64_bundle(say)
        return bundle.folder, sum((bundle.folder / name).stat().st_size for name in bundle.files)
    raise InputError(f"rebirth builds its runner for this host and for {ARM64}, not for {abi!r}")


def start_emulator(options: EmulatorOptions):
    """`rebirth devices emulate`: an emulated phone listening on ``options.host:port`` (its threads run
    until the process ends).

    Raises:
        InputError: an unknown phone profile, unreadable keys, keys without ``auth``, a non-loopback
            address without ``auth``, or a port that cannot be bound.
    """
    from rebirth.devices.emulator import PHONES, EmulatedPhone
    from rebirth.devices.emulator.auth import read_keys

    if options.phone not in PHONES:
        raise InputError(f"unknown phone profile {options.phone!r}; profiles: {', '.join(sorted(PHONES))}")
    if options.authorized_keys and not options.auth:
        raise InputError("--authorized-keys needs --auth")
    keys = None
    if options.auth:
        from rebirth.devices.keys import ensure_key

        files = list(options.authorized_keys) or [ensure_key().with_suffix(".pub")]
        try:
            keys = read_keys(files)
        except (OSError, ValueError) as error:
            raise InputError(f"--authorized-keys: {error}") from None
    root = options.root or Path(tempfile.mkdtemp(prefix=f"rebirth-{options.phone}-"))
    try:
        from rebirth.devices.emulator import Physics

        physics = Physics(start_c=options.start_c, plugged=options.plugged) if options.body else None
        return EmulatedPhone(root, PHONES[options.phone], host=options.host, port=options.port,
                             authorized_keys=keys, abi=options.abi, physics=physics).start()
    except ValueError as error:
        raise InputError(str(error)) from None
    except OSError as error:
        raise InputError(f"cannot listen on {options.host}:{options.port} ({error.strerror or error})") from None
