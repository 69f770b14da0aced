"""rebirth's cache folder: exports, trained weights, built runners and the held-out logits of slimmed originals
live under it."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$REBIRTH_CACHE``, else ``$XDG_CACHE_HOME/rebirth``, else ``~/.cache/rebirth``."""
    explicit = os.environ.get("REBIRTH_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rebirth"
