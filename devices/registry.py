"""Device names -> devices: ``local`` is built in, phones come from the inventory (devices.toml)."""

from __future__ import annotations

from rebirth.contract.errors import UnknownDeviceError
from rebirth.devices.base import Device

DEFAULT_DEVICE = "local"


def open_device(name: str) -> Device:
    """The device called ``name``: ``local``, a phone of the inventory, or one named by where it is
    (``host:port`` or ``adb:SERIAL``, see ``devices.inventory.adhoc_config``). Close it when done.

    Raises:
        UnknownDeviceError: no device of that name is configured.
        ConfigError: the inventory is wrong.
    """
    if name == DEFAULT_DEVICE:
        from rebirth.devices.inventory import read_inventory
        from rebirth.devices.local import LocalDevice

        return LocalDevice(config=read_inventory().local)
    if ":" in name:  # inventory names cannot hold one
        from rebirth.devices.adb import AdbDevice
        from rebirth.devices.inventory import adhoc_config

        return AdbDevice(adhoc_config(name))
    from rebirth.devices.inventory import inventory_path, load_inventory

    path = inventory_path()
    inventory = load_inventory(path)
    if name in inventory:
        from rebirth.devices.adb import AdbDevice

        return AdbDevice(inventory[name])
    where = (f"{path} has " + (", ".join(sorted(inventory)) or "no devices")) if path else (
        "there is no devices.toml (looked in the working directory, $REBIRTH_DEVICES and ~/.config/rebirth)")
    raise UnknownDeviceError(f"unknown device {name!r}: {where}; add it as [devices.{name}] with "
                             "address = \"HOST:PORT\"", device=name, step="open")
