"""An emulated Android phone: an adbd speaking the ADB wire protocol on loopback."""

from rebirth.devices.emulator.adbd import EmulatedPhone
from rebirth.devices.emulator.phone import PHONES, PhoneProfile, Sandbox, SleepingRunner
from rebirth.devices.emulator.physics import Gauge, Physics

__all__ = ["PHONES", "EmulatedPhone", "Gauge", "Physics", "PhoneProfile", "Sandbox", "SleepingRunner"]
