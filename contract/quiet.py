"""Silence the warnings and prints that ExecuTorch's devtools emit, at our edge only."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
import warnings
from collections.abc import Iterator

_lock = threading.Lock()
_depth = 0
_saved: list = []


@contextlib.contextmanager
def quiet() -> Iterator[io.StringIO]:
    """Swallow warnings, log records and stdout/stderr prints from Python code inside.

    The streams, warning filters and logger levels are process-wide, so concurrent and nested
    uses share one silence: the first to enter saves and swaps them, the last to leave restores
    them (threads that profile several devices at once would otherwise restore each other's
    swapped streams and leave the process silent).
    """
    captured = io.StringIO()
    _enter(captured)
    try:
        yield captured
    finally:
        _leave()


def _enter(captured: io.StringIO) -> None:
    global _depth
    with _lock:
        _depth += 1
        if _depth > 1:
            return
        # torch's loggers carry their own handlers, bound to the stderr of the moment torch was imported.
        loggers = [logging.getLogger(), logging.getLogger("torch")]
        filters = warnings.catch_warnings()
        filters.__enter__()
        _saved[:] = [sys.stdout, sys.stderr, filters, [(logger, logger.level) for logger in loggers]]
        for logger in loggers:
            logger.setLevel(logging.CRITICAL)
        warnings.simplefilter("ignore")
        sys.stdout = sys.stderr = captured


def _leave() -> None:
    global _depth
    with _lock:
        _depth -= 1
        if _depth:
            return
        sys.stdout, sys.stderr, filters, levels = _saved
        filters.__exit__(None, None, None)
        for logger, level in levels:
            logger.setLevel(level)
        _saved.clear()
