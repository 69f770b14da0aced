"""The farm and its store in the terminal: the summary of `rebirth farm run` and `rebirth results list`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Protocol

from rich.console import Console
from rich.markup import escape

from rebirth.contract.profile import Profile
from rebirth.contract.stored import StoredRun, device_fingerprint
from rebirth.reports.layout import NAME, NUMBER, PROSE, SHORTEN, Column, FittedTable, Notes
from rebirth.reports.units import mib, ms


class StoredResult(Protocol):
    @property
    def profile(self) -> Profile: ...

    @property
    def where(self) -> str: ...


class DeviceOutcome(Protocol):
    """One device's part of a farm run (``profiler.FarmRun``)."""

    @property
    def device(self) -> str: ...

    @property
    def error(self) -> Optional[str]: ...

    @property
    def result(self) -> Optional[StoredResult]: ...


def render_farm_summary(runs: Sequence[DeviceOutcome], console: Optional[Console] = None) -> None:
    """One row per device: fingerprint, p50, peak RSS, and the stored run or the error (numbered notes under
    the table where the console is too narrow for them)."""
    energies = {run.device: _energy(run.result.profile) for run in runs if run.result is not None}
    metered = any(value != "-" for value in energies.values())
    columns = [Column("device"), Column("fingerprint", NAME), Column("p50", NUMBER), Column("peak RSS", NUMBER),
               *([Column("energy", NUMBER)] if metered else []), Column("stored run / error", PROSE)]
    table = FittedTable(columns, "farm run", steps=(Notes("stored run / error"), SHORTEN))
    for run in runs:
        stored = run.result
        if stored is not None:
            memory = stored.profile.memory.peak_rss_bytes
            table.add_row(escape(run.device), device_fingerprint(stored.profile.device),
                          ms(stored.profile.latency.p50), mib(memory) if memory is not None else "-",
                          *([energies[run.device]] if metered else []), escape(stored.where))
        else:
            table.add_row(escape(run.device), "-", "-", "-", *(["-"] if metered else []),
                          f"[red]FAILED: {escape(run.error or '')}[/]")
    (console or Console()).print(table)


def _energy(profile) -> str:
    """``1.23 mJ`` per inference where the device's battery gave it, else ``-``."""
    energy = profile.energy
    return f"{energy.mj_per_inference:.3g} mJ" if energy is not None and energy.mj_per_inference is not None else "-"


def results_table(runs: Sequence[StoredRun]) -> list[str]:
    """`rebirth results list`: aligned plain-text rows (a header first), easy to read and to grep."""
    metered = any(run.summary.energy_mj is not None for run in runs)
    rows = [("fingerprint", "run", "device", "model", "commit", "time", "p50", "peak RSS",
             *(("energy",) if metered else ()))]
    rows += [(run.fingerprint, f"{run.number:04d}", run.device, run.model_key, (run.commit or "-")[:10], run.time,
              ms(run.summary.p50_ms), mib(run.summary.peak_rss_bytes),
              *((f"{run.summary.energy_mj:.3g} mJ" if run.summary.energy_mj is not None else "-",) if metered else ()))
             for run in runs]
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
