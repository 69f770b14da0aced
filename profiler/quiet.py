"""Silence the warnings and prints that ExecuTorch's devtools emit, at our edge only."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Iterator


@contextlib.contextmanager
def quiet() -> Iterator[io.StringIO]:
    """Swallow warnings, log records and stdout/stderr prints from Python code inside."""
    captured = io.StringIO()
    # torch's loggers carry their own handlers, bound to the stderr of the moment torch was imported.
    loggers = [logging.getLogger(), logging.getLogger("torch")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(captured), \
                contextlib.redirect_stderr(captured):
            warnings.simplefilter("ignore")
            yield captured
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def import_heavy() -> None:
    """Import executorch's compiler and devtools once, with their import-time chatter silenced."""
    with quiet():
        import executorch.devtools  # noqa: F401
        import executorch.exir  # noqa: F401
