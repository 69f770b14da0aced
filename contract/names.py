"""Names users give things (devices, groups, baselines): safe as file names and in a shell."""

from __future__ import annotations

import re

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
NAME_RULE = "letters, digits, '.', '_', '-'"


def is_name(text: str) -> bool:
    """Whether ``text`` can name a device, a group or a baseline."""
    return bool(NAME.match(text))
