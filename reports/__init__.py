"""Reports read Profiles (never devices): the terminal view now, HTML comparisons later."""

from reports.terminal import render_profile

__all__ = ["render_profile"]
