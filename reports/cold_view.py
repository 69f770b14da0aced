"""A cold start (``contract.ColdStart``) for people: its phases as "median [95% interval]" and the warm-up curve,
the same words in the terminal and in the HTML report."""

from __future__ import annotations

from typing import Optional

from rebirth.contract.cold import ColdStart, Distribution
from rebirth.reports.units import ms


def spread(value: Optional[Distribution]) -> str:
    """``1.49 ms [1.12–2.39]``: the median and its 95% interval; ``n/a`` where the runner did not say."""
    if value is None:
        return "n/a"
    return f"{ms(value.median)} [{value.low:.3f}–{value.high:.3f}]"


def heading(cold: ColdStart) -> str:
    """How the cold start was measured: how many processes, whether the page cache was dropped."""
    cache = "page cache dropped before each" if cold.page_cache_flushed else "page cache NOT dropped"
    return (f"cold start: {cold.runs} fresh process{'es' if cold.runs != 1 else ''}, {cold.executions} "
            f"execution{'s' if cold.executions != 1 else ''} each, {cache}; median [95% interval]")


def curve_text(cold: ColdStart) -> str:
    """The medians of execution 1, 2, ... of the processes."""
    if not cold.curve:
        return "warm-up curve: n/a"
    return "warm-up curve (median of execution 1..{}): {}".format(
        len(cold.curve), ", ".join(f"{point.median:.3f}" for point in cold.curve) + " ms")


def cold_lines(cold: ColdStart) -> list[str]:
    """The cold start in plain lines: how it was measured, each phase, the curve, and its notes."""
    phases = "; ".join(f"{label} {spread(value)}" for label, value in cold.phases())
    return [heading(cold), phases, curve_text(cold), *(f"cold start: {note}" for note in cold.notes)]
