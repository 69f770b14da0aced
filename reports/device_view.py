"""Devices in the terminal: `rebirth devices list`, `info` and `check`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from rich.console import Console
from rich.markup import escape

from rebirth.contract.device import Battery, CheckItem, DeviceReport, DeviceStatus
from rebirth.reports.layout import NUMBER, PROSE, Column, Drop, FittedTable, Notes

STATUS_COLOUR = {"ready": "green", "device": "green", "unauthorized": "yellow"}


def render_device_list(rows: Sequence[DeviceStatus], inventory: str, console: Optional[Console] = None) -> None:
    """One row per device: name, kind, where it is, whether it answers, and what it said."""
    table = FittedTable([Column("name"), Column("kind"), Column("address / serial"), Column("status"),
                         Column("detail", PROSE)], f"devices ({escape(inventory)})",
                        steps=(Notes("detail"), Drop("kind")))
    for row in rows:
        table.add_row(escape(row.name), row.kind, escape(row.target),
                      f"[{STATUS_COLOUR.get(row.status, 'red')}]{escape(row.status)}[/]", escape(row.detail))
    (console or Console()).print(table)


def check_lines(items: Sequence[CheckItem]) -> list[str]:
    """`rebirth devices check`: one plain line per item, ``ok`` or ``FAIL`` first."""
    return [f"{'ok  ' if item.ok else 'FAIL'} {item.name:<13} {item.detail}" for item in items]


def render_device(report: DeviceReport, console: Optional[Console] = None) -> None:
    """`rebirth devices info`: identity, SoC, cores with clocks and governors, temperatures, battery."""
    console = console or Console()
    device, props = report.device, report.props
    soc = " / ".join(dict.fromkeys(filter(None, (props.get("ro.soc.manufacturer"), props.get("ro.soc.model"),
                                                 props.get("ro.board.platform"), props.get("ro.hardware")))))
    identity = FittedTable([Column("key", style="bold"), Column("value", PROSE)],
                           f"{escape(device.name)} ({escape(device.kind)})", show_header=False)
    rows = [("model", device.product_model), ("SoC / hardware", soc or None), ("ABI", device.abi),
            ("OS", device.os), ("serial", device.serial), ("big-core mask", report.big_core_mask)]
    if report.battery is not None:
        rows.append(("battery", _battery(report.battery)))
    for key, value in rows:
        identity.add_row(key, escape(str(value)) if value is not None else "[dim]unknown[/]")
    console.print(identity)
    cores = FittedTable([Column("core"), Column("max MHz", NUMBER), Column("current MHz", NUMBER),
                         Column("governor", PROSE)], "cores")
    for core in report.cores:
        cores.add_row(str(core.index), _mhz(core.max_freq_khz), _mhz(core.cur_freq_khz), escape(core.governor or "?"))
    console.print(cores)
    if report.zones:
        zones = FittedTable([Column("zone"), Column("type", PROSE), Column("°C", NUMBER)], "temperatures")
        for zone in report.zones:
            zones.add_row(str(zone.index), escape(zone.kind or "?"),
                          f"{zone.temperature_c:.1f}" if zone.temperature_c is not None else "?")
        console.print(zones)


def _battery(battery: Battery) -> Optional[str]:
    parts = [f"{battery.level}%" if battery.level is not None else None,
             f"{battery.temperature_c:.1f} °C" if battery.temperature_c is not None else None,
             battery.status, f"powered by {battery.powered}" if battery.powered else None]
    return ", ".join(filter(None, parts)) or None


def _mhz(khz: Optional[int]) -> str:
    return f"{khz / 1000:.0f}" if khz else "?"
