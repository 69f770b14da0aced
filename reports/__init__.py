"""Reports read records (never devices): a Profile or a before/after pair in the terminal and as one HTML
page, the slimmer's plan and results, devices and the farm in the terminal, and regression verdicts in the
terminal, as JUnit XML and as Markdown.

Each name is imported when it is first used, so that a command pays only for the view it prints (``rebirth
devices list`` needs rich, not numpy, scipy or the HTML templates).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Comparison": "compare", "compare": "compare", "chrome_trace": "chrome_trace", "write_trace": "chrome_trace",
    "check_lines": "device_view", "render_device": "device_view", "render_device_list": "device_view",
    "render_farm_summary": "farm_view", "results_table": "farm_view",
    "render_html": "html", "write_html": "html", "write_report": "html",
    "write_junit": "junit", "write_summary": "markdown", "render_verdicts": "regress_view",
    "render_plan": "slim_view", "render_slim": "slim_view",
    "render_comparison": "terminal", "render_profile": "terminal",
    "render_tune": "tune_view",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'rebirth.reports' has no attribute {name!r}")
    return getattr(importlib.import_module(f"rebirth.reports.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return __all__
