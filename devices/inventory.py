"""The device inventory: ``devices.toml`` maps names such as ``s6`` to phones.

Where it is read from, first found wins:

1. ``devices.toml`` in the working directory;
2. the file named by ``$REBIRTH_DEVICES``;
3. ``devices.toml`` in the user's config directory (``$XDG_CONFIG_HOME/rebirth``, else
   ``~/.config/rebirth``).

The smallest entry works as it stands::

    [devices.s6]
    address = "127.0.0.1:5555"

Everything else has a default; see ``DeviceConfig`` and the README. A ``[groups]`` table names
sets of them for ``rebirth farm run --group NAME``::

    [groups]
    lab = ["s6", "pixel7"]

Phones outside the inventory are named by where they are: ``host:port`` (an ``adb connect``
address, such as a DeviceFarmer STF "remote connect" one) or ``adb:SERIAL`` (a phone of a
running adb server); see ``adhoc_config``.
"""

from __future__ import annotations

import os
import posixpath
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional

from rebirth.contract.errors import ConfigError, UnknownDeviceError
from rebirth.contract.names import NAME_RULE, is_name

ENV_VAR = "REBIRTH_DEVICES"
FILE_NAME = "devices.toml"
DEFAULT_WORKDIR = "/data/local/tmp/rebirth"
TRANSPORTS = ("tcp", "usb", "adb-server")


@dataclass(frozen=True)
class DeviceConfig:
    """One phone of the inventory."""

    name: str
    transport: str = "tcp"
    """``tcp`` (``address`` is ``host:port``, as ``adb connect`` takes it), ``usb`` (``serial``, through
    adb-shell and libusb), or ``adb-server`` (``serial`` as ``adb devices`` lists it, through a running
    adb server)."""
    address: Optional[str] = None
    serial: Optional[str] = None
    runner: Optional[Path] = None
    """An ``executor_runner`` built for the phone, on this computer; pushed when it changed.
    Default: one already on the phone (``WORKDIR/bin/executor_runner``, else on its PATH)."""
    workdir: str = DEFAULT_WORKDIR
    cpu_mask: Optional[str] = None
    """Hex mask for ``taskset``. Default: the cores with the highest maximum frequency."""
    threads: Optional[int] = None
    """Runtime threads. Default: the number of cores in the mask."""
    warmup: Optional[int] = None
    iterations: Optional[int] = None
    cooldown_s: float = 0.0
    key: Optional[Path] = None
    """The ADB private key. Default: ``~/.android/adbkey``."""
    auth_timeout_s: float = 10.0
    source: Optional[Path] = None

    @property
    def target(self) -> str:
        if self.transport == "tcp":
            return self.address or ""
        return f"{self.transport}:{self.serial or 'any'}"


def inventory_path(cwd: Optional[Path] = None) -> Optional[Path]:
    """The inventory file in use, or None when there is none."""
    local = (cwd or Path.cwd()) / FILE_NAME
    if local.is_file():
        return local
    named = os.environ.get(ENV_VAR)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"${ENV_VAR} names {path}, which is not a file", step="inventory")
        return path
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    user = config_home / "rebirth" / FILE_NAME
    return user if user.is_file() else None


@dataclass(frozen=True)
class Inventory:
    """What a ``devices.toml`` holds: its phones by name and its groups of them."""

    devices: dict[str, DeviceConfig] = field(default_factory=dict)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    path: Optional[Path] = None
    stf: dict[str, str] = field(default_factory=dict)
    """The ``[stf]`` table: ``url`` of a DeviceFarmer STF server, and ``token`` (better: ``$STF_TOKEN``)."""


def load_inventory(path: Optional[Path] = None) -> dict[str, DeviceConfig]:
    """Every device of the inventory by name; empty when there is no inventory file.

    Raises:
        ConfigError: the file is not valid TOML or an entry is wrong (named with its key).
    """
    return read_inventory(path).devices


def read_inventory(path: Optional[Path] = None) -> Inventory:
    """The whole inventory, devices and groups, validated; empty when there is no inventory file.

    Raises:
        ConfigError: the file is not valid TOML, or an entry or a group is wrong (named with its key).
    """
    path = path or inventory_path()
    if path is None:
        return Inventory()
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the device inventory ({error})", step="inventory") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})", step="inventory") from None
    devices, groups, stf = data.get("devices", {}), data.get("groups", {}), data.get("stf", {})
    unknown = sorted(set(data) - {"devices", "groups", "stf"})
    if unknown or not isinstance(devices, dict) or not isinstance(groups, dict):
        found = ", ".join(unknown) or ("devices" if not isinstance(devices, dict) else "groups")
        raise ConfigError(f"{path}: expected only [devices.NAME] tables, a [groups] and an [stf] table, found "
                          f"{found}", step="inventory")
    extra = sorted(set(stf) - {"url", "token"}) if isinstance(stf, dict) else ["a value that is not a table"]
    if extra or not all(isinstance(value, str) for value in stf.values()):
        raise ConfigError(f"{path}: [stf] takes url and token as strings, found {', '.join(extra) or 'another type'}",
                          step="inventory")
    configs = {name: _entry(path, name, entry) for name, entry in devices.items()}
    return Inventory(configs, {name: _group(path, name, members, configs) for name, members in groups.items()},
                     path, dict(stf))


def _group(path: Path, name: str, members, devices: dict[str, DeviceConfig]) -> tuple[str, ...]:
    where = f"{path}: [groups] {name}"
    if not is_name(name):
        raise ConfigError(f"{where}: {name!r} cannot name a group ({NAME_RULE})", step="inventory")
    if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
        raise ConfigError(f"{where} must be a non-empty list of device names, such as [\"s6\", \"pixel7\"]",
                          step="inventory")
    unknown = [member for member in members if member not in devices and member != "local" and ":" not in member]
    if unknown:
        raise ConfigError(f"{where}: {', '.join(map(repr, unknown))} "
                          f"{'is not a device' if len(unknown) == 1 else 'are not devices'} of [devices]",
                          step="inventory")
    for member in members:
        if ":" in member:
            try:
                adhoc_config(member)
            except UnknownDeviceError as error:
                raise ConfigError(f"{where}: {error}", step="inventory") from None
    return tuple(dict.fromkeys(members))


def adhoc_config(spec: str) -> DeviceConfig:
    """A phone that the inventory does not name, with default settings.

    ``adb:SERIAL`` is a phone of a running adb server (as ``adb devices`` lists it); ``host:port``
    an ADB endpoint over TCP, as ``adb connect`` takes it (DeviceFarmer STF "remote connect",
    cloud farms, ``adb tcpip``).

    Raises:
        UnknownDeviceError: ``spec`` is neither.
    """
    from rebirth.devices.transport import parse_address

    if spec.startswith("adb:"):
        if not spec[4:]:
            raise UnknownDeviceError(f"{spec!r}: adb:SERIAL needs the serial that `adb devices` lists",
                                     device=spec, step="open")
        return DeviceConfig(spec, transport="adb-server", serial=spec[4:])
    try:
        parse_address(spec)
    except ValueError as error:
        raise UnknownDeviceError(f"not a device name, host:port or adb:SERIAL: {error}",
                                 device=spec, step="open") from None
    return DeviceConfig(spec, address=spec)


_TYPES: dict[str, type | tuple[type, ...]] = {
    "transport": str, "address": str, "serial": str, "runner": str, "workdir": str, "cpu_mask": str, "threads": int,
    "warmup": int, "iterations": int, "cooldown_s": (int, float), "key": str, "auth_timeout_s": (int, float)}


def _entry(path: Path, name: str, entry) -> DeviceConfig:
    where = f"{path}: [devices.{name}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table", device=name, step="inventory")
    if not is_name(name) or name == "local":
        raise ConfigError(f"{where}: {name!r} cannot name a phone ({NAME_RULE}; not 'local')",
                          device=name, step="inventory")
    known = {f.name for f in fields(DeviceConfig)} - {"name", "source"}
    for key, value in entry.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r}; keys: {', '.join(sorted(known))}", device=name,
                              step="inventory")
        if not isinstance(value, _TYPES[key]) or isinstance(value, bool):
            kind = _TYPES[key]
            expected = kind.__name__ if isinstance(kind, type) else "a number"
            raise ConfigError(f"{where}: {key} must be {expected}", device=name, step="inventory")
    transport = entry.get("transport", "usb" if "serial" in entry and "address" not in entry else "tcp")
    if transport not in TRANSPORTS:
        raise ConfigError(f"{where}: transport must be one of {', '.join(TRANSPORTS)}", device=name,
                          step="inventory")
    if transport == "adb-server" and not entry.get("serial"):
        raise ConfigError(f"{where}: transport \"adb-server\" needs serial = \"...\" as `adb devices` lists it",
                          device=name, step="inventory")
    if transport == "tcp" and not entry.get("address"):
        raise ConfigError(f"{where}: needs address = \"host:port\" (or transport = \"usb\" and a serial)",
                          device=name, step="inventory")
    if transport == "tcp":
        from rebirth.devices.transport import parse_address

        try:
            parse_address(entry["address"])
        except ValueError as error:
            raise ConfigError(f"{where}: address {error}", device=name, step="inventory") from None
    workdir = entry.get("workdir", DEFAULT_WORKDIR)
    if not workdir.startswith("/") or ".." in workdir.split("/") or posixpath.normpath(workdir) == "/":
        raise ConfigError(f"{where}: workdir must be an absolute folder such as {DEFAULT_WORKDIR}", device=name,
                          step="inventory")
    mask = entry.get("cpu_mask")
    if (mask is not None and not re.fullmatch(r"(0x)?[0-9a-fA-F]+", mask)) or (mask is not None and int(mask, 16) == 0):
        raise ConfigError(f"{where}: cpu_mask must be a non-zero hex mask such as \"f0\"", device=name,
                          step="inventory")
    for key in ("threads", "iterations"):
        if key in entry and entry[key] < 1:
            raise ConfigError(f"{where}: {key} must be at least 1", device=name, step="inventory")
    for key in ("warmup", "cooldown_s"):
        if key in entry and entry[key] < 0:
            raise ConfigError(f"{where}: {key} must not be negative", device=name, step="inventory")
    runner = _relative_to(path, entry.get("runner"))
    key = _relative_to(path, entry.get("key"))
    return DeviceConfig(name, transport, entry.get("address"), entry.get("serial"), runner,
                        posixpath.normpath(workdir), mask.lower().removeprefix("0x") if mask else None,
                        entry.get("threads"), entry.get("warmup"), entry.get("iterations"),
                        float(entry.get("cooldown_s", 0.0)), key, float(entry.get("auth_timeout_s", 10.0)), path)


def _relative_to(inventory: Path, value: Optional[str]) -> Optional[Path]:
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else (inventory.parent / path)
