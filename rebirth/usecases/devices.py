"""`rebirth devices check`: whether a device can be profiled, down to a probe run of a small model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rebirth.contract.device import CheckItem
from rebirth.devices import check_device


def check(name: str, *, probe: bool = True, say: Callable[[str], None] = lambda text: None) -> list[CheckItem]:
    """Reachable, authorized, runner present and, with ``probe``, a probe model run that writes an ETDump (the
    model is exported once, when the device gets that far).

    Raises:
        InputError: an unknown device or a wrong devices.toml.
    """

    def probe_model() -> Path:
        from rebirth.models import probe_pte

        say("exporting a probe model")
        return probe_pte()

    return check_device(name, probe_model if probe else None)
