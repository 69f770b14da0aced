"""Regression verdicts in the terminal: one row per device x model x check, the reasons as numbered notes
under the table (a reason in a column wraps to a word per line in an 80-column CI log), then the tally. Where
the table is too wide (a CI log), an interval goes under its change, then each device and model gets a table
of its own."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Optional

from rich.console import Console
from rich.markup import escape

from rebirth.contract.checks import (
    FAILED,
    IMPROVEMENT,
    LATENCY,
    MEMORY,
    PASS,
    REGRESSION,
    UNDECIDED,
    UNKNOWN,
    CheckResult,
    Verdict,
    format_change,
)
from rebirth.reports.layout import NUMBER, STACK, Cell, Column, FittedTable, Group, Pair
from rebirth.reports.units import mib, ms

STATUS_STYLE = {PASS: "green", IMPROVEMENT: "cyan", REGRESSION: "bold red", UNDECIDED: "yellow", UNKNOWN: "yellow",
                FAILED: "bold red"}


def render_verdicts(verdicts: Sequence[Verdict], console: Optional[Console] = None) -> None:
    """Print the table of verdicts and a one-line tally of the statuses."""
    console = console or Console()
    notes: list[str] = []
    console.print(verdict_table(verdicts, notes))
    for number, note in enumerate(notes, 1):
        console.print(f"[{number}] {escape(note)}", highlight=False)
    tally = Counter(verdict.status for verdict in verdicts)
    console.print(", ".join(f"[{STATUS_STYLE[status]}]{count} {status}[/]" for status, count in tally.items()),
                  highlight=False)


def verdict_table(verdicts: Sequence[Verdict], notes: list[str]) -> FittedTable:
    """Device, model, check, status, before, after, change with its interval (under it where the console is
    narrow), and the number of its reason in ``notes`` (appended to; one number per distinct reason)."""
    table = FittedTable([Column("device"), Column("model"), Column("check"), Column("status"),
                         Column("before", NUMBER), Column("after", NUMBER), Column("change", NUMBER), Column("note")],
                        "Regression checks", steps=(STACK, Group("device", "model")))

    def note(reason: str) -> str:
        if not reason:
            return ""
        if reason not in notes:
            notes.append(reason)
        return f"[{notes.index(reason) + 1}]"

    for verdict in verdicts:
        device, model = escape(verdict.device), escape(verdict.model)
        if verdict.status == FAILED:
            table.add_row(device, model, "", _status(FAILED), "", "", "", escape(note(verdict.error or "")))
        for result in verdict.results:
            table.add_row(device, model, escape(str(result.check)), _status(result.status),
                          _value(result, result.before), _value(result, result.after), _change(result),
                          escape(note(result.reason)))
    return table


def _change(result: CheckResult) -> Cell:
    """``+12.0% [+8.1%, +16.0%]``, the interval stacked under the change where the table must narrow."""
    change, _, interval = format_change(result).partition(" [")
    return Pair(change, f"[{interval}", link="") if interval else change


def _status(status: str) -> str:
    return f"[{STATUS_STYLE[status]}]{status}[/]"


def _value(result: CheckResult, value: Optional[float]) -> str:
    """A before or after value in the metric's unit."""
    if value is None:
        return "n/a"
    if result.check.kind == LATENCY:
        return ms(value)
    if result.check.kind == MEMORY:
        return mib(int(value))
    return f"{value:.1f}%"

