"""Formatting of sizes, times and shares for people."""

from __future__ import annotations

from typing import Optional


def mib(value: Optional[int]) -> str:
    """Bytes in MiB, or KiB below one MiB."""
    if value is None:
        return "n/a"
    if abs(value) < (1 << 20):
        return f"{value / 1024:.1f} KiB"
    return f"{value / (1 << 20):.1f} MiB"


def ms(value: Optional[float]) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"


def pct(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"
