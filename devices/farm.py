"""A device farm: which devices a farm run means, and one worker per device, in parallel.

Devices are named as everywhere else (``local``, the inventory's names) or by where they are:
``host:port`` (an ``adb connect`` address, such as a DeviceFarmer STF "remote connect" one) and
``adb:SERIAL`` (a phone of a running adb server). ``--all`` means every phone of the inventory and
``--group NAME`` the inventory's ``[groups]`` entry. Each worker opens its own connection; a
device that fails is recorded with its one-line reason and the others go on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Optional, TypeVar

from rebirth.contract.errors import DeviceError, UnknownDeviceError
from rebirth.devices.inventory import Inventory, adhoc_config, read_inventory

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What one device's worker ended with: a result, or the reason it failed."""

    device: str
    result: Optional[T] = None
    error: Optional[str] = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def resolve_targets(names: Sequence[str] = (), all_devices: bool = False, group: Optional[str] = None,
                    inventory: Optional[Inventory] = None) -> list[str]:
    """The devices a farm run means, in order, each once.

    Args:
        names: device names, ``host:port`` or ``adb:SERIAL``.
        all_devices: every phone of the inventory.
        group: a group of the inventory's ``[groups]`` table.
        inventory: default: the inventory in use (see ``devices.inventory``).

    Raises:
        UnknownDeviceError: a name, group or endpoint that does not exist, or no device at all.
        ConfigError: the inventory is wrong.
    """
    inventory = inventory or read_inventory()
    where = str(inventory.path) if inventory.path else "the inventory (there is no devices.toml)"
    if all_devices:
        chosen = list(inventory.devices)
    elif group is not None:
        if group not in inventory.groups:
            known = ", ".join(sorted(inventory.groups)) or "no groups"
            raise UnknownDeviceError(f"unknown group {group!r}: {where} has {known}; add it under [groups] as "
                                     f"{group} = [\"s6\", \"pixel7\"]", device=group, step="open")
        chosen = list(inventory.groups[group])
    else:
        chosen = list(names)
    for name in chosen:
        _check_target(name, inventory, where)
    if not chosen:
        raise UnknownDeviceError(f"no devices to run on: {where} has none", step="open")
    return list(dict.fromkeys(chosen))


def _check_target(name: str, inventory: Inventory, where: str) -> None:
    if ":" in name:
        adhoc_config(name)
    elif name != "local" and name not in inventory.devices:
        known = ", ".join(sorted(inventory.devices)) or "no devices"
        raise UnknownDeviceError(f"unknown device {name!r}: {where} has {known} (or name a phone as host:port "
                                 "or adb:SERIAL)", device=name, step="open")


def fan_out(targets: Sequence[str], job: Callable[[str], T], expected: tuple[type[Exception], ...] = (DeviceError,),
            on_done: Optional[Callable[[Outcome[T]], None]] = None) -> list[Outcome[T]]:
    """Run ``job(device)`` for every device at once, one thread each.

    A job that raises one of ``expected`` gives a failed Outcome with the error's first line;
    anything else is a bug and raises here once every worker has ended.

    Returns:
        One Outcome per device, in the order of ``targets``.
    """
    lock = threading.Lock()

    def work(device: str) -> Outcome[T]:
        start = time.monotonic()
        try:
            outcome = Outcome(device, result=job(device), seconds=time.monotonic() - start)
        except expected as error:
            outcome = Outcome(device, error=_first_line(error), seconds=time.monotonic() - start)
        if on_done:
            with lock:
                on_done(outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, len(targets)), thread_name_prefix="farm") as pool:
        futures = [pool.submit(work, device) for device in targets]
    return [future.result() for future in futures]


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
