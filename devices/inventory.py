"""The device inventory: ``devices.toml`` maps names such as ``s6`` to phones.

Where it is read from, first found wins:

1. ``devices.toml`` in the working directory;
2. the file named by ``$REBIRTH_DEVICES``;
3. ``devices.toml`` in the user's config directory (``$XDG_CONFIG_HOME/rebirth``, else
   ``~/.config/rebirth``).

The smallest entry works as it stands::

    [devices.s6]
    address = "127.0.0.1:5555"

Everything else has a default; see ``DeviceConfig`` and docs/phones.md. A ``[groups]`` table names
sets of them for ``rebirth farm run --group NAME``::

    [groups]
    lab = ["s6", "pixel7"]

Phones outside the inventory are named by where they are: ``host:port`` (an ``adb connect``
address, such as a DeviceFarmer STF "remote connect" one) or ``adb:SERIAL`` (a phone of a
running adb server); see ``adhoc_config``.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Optional, get_args

from rebirth.contract.errors import ConfigError, UnknownDeviceError
from rebirth.contract.names import NAME_RULE, is_name
from rebirth.devices.tables import FieldError, UnknownKeyError, at_least, load_table
from rebirth.devices.transport import parse_address

ENV_VAR = "REBIRTH_DEVICES"
FILE_NAME = "devices.toml"
DEFAULT_WORKDIR = "/data/local/tmp/rebirth"
TransportKind = Literal["tcp", "usb", "adb-server"]
TRANSPORTS: tuple[str, ...] = get_args(TransportKind)
BackendName = Literal["portable", "xnnpack"]
"""``models.BACKENDS``, repeated here because devices do not import models (a test checks they agree)."""


def host_port(address: str) -> str:
    """A check: ``address`` is ``host:port`` (see ``transport.parse_address``)."""
    try:
        parse_address(address)
    except ValueError as error:
        raise ValueError(f"is not host:port ({error})") from None
    return address


def absolute_folder(workdir: str) -> str:
    """A check: an absolute folder on the phone, not ``/`` and without ``..``; normalized."""
    if not workdir.startswith("/") or ".." in workdir.split("/") or posixpath.normpath(workdir) == "/":
        raise ValueError(f"must be an absolute folder such as {DEFAULT_WORKDIR}")
    return posixpath.normpath(workdir)


def hex_mask(mask: str) -> str:
    """A check: a non-zero hex CPU mask (``f0``, ``0xC0``), as ``taskset`` takes it: lower case, no ``0x``."""
    if not re.fullmatch(r"(0x)?[0-9a-fA-F]+", mask) or int(mask, 16) == 0:
        raise ValueError('must be a non-zero hex mask such as "f0"')
    return mask.lower().removeprefix("0x")


@dataclass(frozen=True)
class DeviceConfig:
    """One phone of the inventory."""

    name: str
    transport: TransportKind = "tcp"
    """``tcp`` (``address`` is ``host:port``, as ``adb connect`` takes it), ``usb`` (``serial``, through
    adb-shell and libusb), or ``adb-server`` (``serial`` as ``adb devices`` lists it, through a running
    adb server)."""
    address: Optional[Annotated[str, host_port]] = None
    serial: Optional[str] = None
    runner: Optional[Path] = None
    """An ``executor_runner`` built for the phone, on this computer; pushed when it changed.
    Default: one already on the phone (``WORKDIR/bin/executor_runner``, else on its PATH)."""
    workdir: Annotated[str, absolute_folder] = DEFAULT_WORKDIR
    cpu_mask: Optional[Annotated[str, hex_mask]] = None
    """Hex mask for ``taskset``. Default: the cores with the highest maximum frequency."""
    threads: Optional[Annotated[int, at_least(1)]] = None
    """Runtime threads. Default: the number of cores in the mask."""
    warmup: Optional[Annotated[int, at_least(0)]] = None
    iterations: Optional[Annotated[int, at_least(1)]] = None
    cooldown_s: Annotated[float, at_least(0)] = 0.0
    cool_below_c: Optional[Annotated[float, at_least(0)]] = None
    """Before each measured run, wait until the hottest thermal zone is below this. Default: the phone's
    learned idle temperature + 3 °C (``devices.thermal``)."""
    cool_wait_s: Optional[Annotated[float, at_least(0)]] = None
    """The longest wait for it (default 120 s)."""
    gauge_unit: Optional[Literal["uA", "mA"]] = None
    """The unit of the battery gauge's ``current_now``. Default: guessed from its size (``devices.energy``)."""
    unplug: bool = False
    """Send ``dumpsys battery unplug`` before a run (and ``reset`` after), for a phone whose charger honours it."""
    backend: Optional[BackendName] = None
    """The backend a model is lowered to for this phone when the command line names none (``rebirth tune
    --save`` writes it with ``threads`` and ``cpu_mask``). Default: xnnpack."""
    key: Optional[Path] = None
    """The ADB private key. Default: ``~/.android/adbkey``."""
    auth_timeout_s: Annotated[float, at_least(0)] = 10.0
    source: Optional[Path] = None
    """The devices.toml the entry is from (set by the loader, not a key of the table)."""

    @property
    def target(self) -> str:
        if self.transport == "tcp":
            return self.address or ""
        return f"{self.transport}:{self.serial or 'any'}"


@dataclass(frozen=True)
class LocalConfig:
    """The ``[local]`` table: run settings for this host (``rebirth tune --device local --save`` writes them)."""

    cpu_mask: Optional[Annotated[str, hex_mask]] = None
    """Hex mask of the host's cores to pin the runner to. Default: not pinned."""
    threads: Optional[Annotated[int, at_least(1)]] = None
    """Runtime threads. Default: the runtime's."""
    backend: Optional[BackendName] = None
    warmup: Optional[Annotated[int, at_least(0)]] = None
    iterations: Optional[Annotated[int, at_least(1)]] = None
    cooldown_s: Optional[Annotated[float, at_least(0)]] = None


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
    local: LocalConfig = field(default_factory=LocalConfig)
    """The ``[local]`` table: this host's run settings."""


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
    tables = _tables(path, data)
    configs = {name: _entry(path, name, entry) for name, entry in tables.devices.items()}
    groups = {name: _group(path, name, members, configs) for name, members in tables.groups.items()}
    return Inventory(configs, groups, path, _stf(path, tables.stf), _local(path, tables.local))


@dataclass(frozen=True)
class _InventoryTables:
    """The tables a devices.toml may hold."""

    devices: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)
    stf: dict = field(default_factory=dict)
    local: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _StfTable:
    """``[stf]``: the server's address and (better in ``$STF_TOKEN``) the access token."""

    url: Optional[str] = None
    token: Optional[str] = None


def _tables(path: Path, data: dict) -> _InventoryTables:
    expected = f"{path}: expected only [devices.NAME] tables, a [groups], an [stf] and a [local] table"
    try:
        return load_table(_InventoryTables, data)
    except UnknownKeyError as error:
        close = f" (did you mean [{error.close}]?)" if error.close else ""
        raise ConfigError(f"{expected}; found {error.key!r}{close}", step="inventory") from None
    except FieldError as error:
        raise ConfigError(f"{expected}; {error}", step="inventory") from None


def _stf(path: Path, table: dict) -> dict[str, str]:
    try:
        stf = load_table(_StfTable, table)
    except FieldError as error:
        raise ConfigError(f"{path}: [stf] {error}", step="inventory") from None
    return {key: value for key, value in dataclasses.asdict(stf).items() if value is not None}


def _local(path: Path, table: dict) -> LocalConfig:
    try:
        return load_table(LocalConfig, table)
    except FieldError as error:
        raise ConfigError(f"{path}: [local] {error}", device="local", step="inventory") from None


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


def _entry(path: Path, name: str, entry) -> DeviceConfig:
    where = f"{path}: [devices.{name}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table", device=name, step="inventory")
    if not is_name(name) or name == "local":
        raise ConfigError(f"{where}: {name!r} cannot name a phone ({NAME_RULE}; not 'local': this host's "
                          "settings go in a [local] table)",
                          device=name, step="inventory")
    usb = "serial" in entry and "address" not in entry
    try:
        config = load_table(DeviceConfig, {"transport": "usb" if usb else "tcp", **entry}, base=path.parent,
                            name=name, source=path)
    except FieldError as error:
        raise ConfigError(f"{where}: {error}", device=name, step="inventory") from None
    if config.transport == "adb-server" and not config.serial:
        raise ConfigError(f"{where}: transport \"adb-server\" needs serial = \"...\" as `adb devices` lists it",
                          device=name, step="inventory")
    if config.transport == "tcp" and not config.address:
        raise ConfigError(f"{where}: needs address = \"host:port\" (or transport = \"usb\" and a serial)",
                          device=name, step="inventory")
    return config
