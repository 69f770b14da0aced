"""`rebirth tune` in the terminal: one row per setting measured against rebirth's default, then the verdict."""

from __future__ import annotations

import math
from typing import Optional

from rich.console import Console
from rich.markup import escape

from rebirth.contract.tune import REFERENCE, TunedSetting, TuneRecord, core_list
from rebirth.reports.layout import NUMBER, PROSE, Column, FittedTable, Notes
from rebirth.reports.units import mib, ms

DASH = "—"


def render_tune(record: TuneRecord, console: Optional[Console] = None) -> None:
    """The settings, fastest first (the default marked), what was measured and left out, and the best one."""
    console = console or Console()
    table = FittedTable([Column("setting"), Column("p50", NUMBER), Column("vs default", NUMBER),
                         Column("peak RSS", NUMBER), Column("energy", NUMBER), Column("status", PROSE)],
                        f"{escape(record.model)} on {escape(record.device)}: {len(record.rows)} settings, "
                        f"{record.blocks} blocks, {record.seconds:.0f} s",
                        steps=(Notes("status"),))
    for row in sorted(record.rows, key=_order):
        setting = row.setting
        table.add_row(f"{setting.backend} {setting.core_set} {core_list(setting.cores)} x{setting.threads}",
                      ms(row.p50_ms) if not math.isnan(row.p50_ms) else "not run", ratio_text(row),
                      mib(row.peak_rss_bytes) if row.peak_rss_bytes is not None else DASH,
                      f"{row.energy_mj:.2f} mJ" if row.energy_mj is not None else DASH, _status(row, record))
    console.print(table)
    for note in record.notes:
        console.print(f"note: {escape(note)}", highlight=False)
    console.print("setting: backend, core set, cores, threads; vs default: latency over rebirth's default, "
                  f"{record.confidence:.0%} CI (below 1 is faster)", highlight=False, style="dim")
    console.print(escape(record.verdict), highlight=False)


def ratio_text(row: TunedSetting) -> str:
    """``0.62x 0.60-0.64``: latency over the default's with its 95% interval (below 1 is faster)."""
    if row.status == REFERENCE:
        return "1.00x"
    if math.isnan(row.ratio):
        return "n/a"
    return f"{_number(row.ratio)}x {_number(row.low)}-{_number(row.high)}"


def _number(value: float) -> str:
    """Two decimals below 10, fewer above: a ratio's interval stays narrow."""
    if math.isinf(value):
        return "inf"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"

def _order(row: TunedSetting) -> float:
    return row.ratio if not math.isnan(row.ratio) else math.inf


def _status(row: TunedSetting, record: TuneRecord) -> str:
    if row.status == REFERENCE:
        return "default"
    return "[bold green]best[/]" if row.setting == record.best else row.status
