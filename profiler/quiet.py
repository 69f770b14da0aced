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
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(captured), \
                contextlib.redirect_stderr(captured):
            warnings.simplefilter("ignore")
            yield captured
    finally:
        root.setLevel(level)


def import_heavy() -> None:
    """Import executorch's compiler and devtools once, with their import-time chatter silenced."""
    with quiet():
        import executorch.devtools  # noqa: F401
        import executorch.exir  # noqa: F401
