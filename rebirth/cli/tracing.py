"""`--trace FILE`: the timelines a command's runs collect, written as one Chrome trace with one printed line."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from rebirth.profiler.timeline import Timelines


def timelines_for(args: argparse.Namespace) -> Optional[Timelines]:
    """Somewhere for the runs' timelines when ``--trace`` was given, else None (nothing is collected)."""
    if getattr(args, "trace", None) is None:
        return None
    from rebirth.profiler.timeline import Timelines

    return Timelines()


def write_trace_file(args: argparse.Namespace, timelines: Optional[Timelines]) -> None:
    """Write the collected timelines to ``--trace`` and say where, how many executions and what was capped
    (unless ``--quiet``).

    Raises:
        InputError: the file cannot be written.
    """
    if timelines is None:
        return
    from rebirth.reports import write_trace

    summary = write_trace(args.trace, timelines.items)
    if not getattr(args, "quiet", False):
        print(summary.line())
