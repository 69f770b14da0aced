"""Device names -> devices. ``local`` is built in; phones come from the inventory (later)."""

from __future__ import annotations

from devices.errors import UnknownDeviceError

DEFAULT_DEVICE = "local"


def known_devices() -> list[str]:
    return [DEFAULT_DEVICE]


def open_device(name: str):
    """The device called ``name``.

    Raises:
        UnknownDeviceError: no device of that name is configured.
    """
    if name == DEFAULT_DEVICE:
        from devices.local import LocalDevice

        return LocalDevice()
    raise UnknownDeviceError(
        f"unknown device {name!r}; known devices: {', '.join(known_devices())}", device=name, step="open")
