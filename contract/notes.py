"""A note on a record: what may have moved its numbers (noise) or what a reader must know (a warning), as a
stable ``code`` that tools and tests can rely on, and the ``text`` a person reads."""

from __future__ import annotations

from dataclasses import dataclass

WIDE_SPREAD, BUSY, CLOCKS_MOVED, THROTTLED = "wide_spread", "busy", "clocks_moved", "throttled"
TOO_HOT = "too_hot"
"""Noise: the runs spread widely; other work took the device's CPU; clocks changed; the device throttled; it
did not cool below its thermal limit within the wait's bound."""
NO_ETRECORD, ETRECORD_MISMATCH, ETRECORD_UNREADABLE = "no_etrecord", "etrecord_mismatch", "etrecord_unreadable"
EMULATED, PYTHON_RUNNER, OTHER = "emulated", "python_runner", "other"
"""Warnings: ops without source layers (no, another model's, or an unreadable ETRecord); an emulated CPU; the
fallback Python runner; anything else."""
NOT_FLUSHED, NO_PHASES = "not_flushed", "no_phases"
"""Cold start: the model's file was not dropped from the page cache before a process; the runner does not say
the load's phases or each execution's time."""


@dataclass(frozen=True)
class Note:
    code: str
    text: str

    def __str__(self) -> str:
        return self.text


_OLD_PREFIXES = (("the runs spread widely", WIDE_SPREAD), ("the device was busy", BUSY),
                 ("clocks moved", CLOCKS_MOVED), ("the device throttled", THROTTLED), ("no ETRecord", NO_ETRECORD),
                 ("ETRecord ", ETRECORD_MISMATCH))


def from_text(text: str) -> Note:
    """A note of a record written before notes had codes: its code recognised from its words."""
    if "emulated" in text:
        return Note(EMULATED, text)
    if "Python runner" in text:
        return Note(PYTHON_RUNNER, text)
    return Note(next((code for prefix, code in _OLD_PREFIXES if text.startswith(prefix)), OTHER), text)
