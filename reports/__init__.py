"""Reports read Profiles (never devices): the terminal view and the before/after HTML report."""

from reports.compare import Comparison, compare, load_slim
from reports.html import render_html, write_html
from reports.terminal import render_comparison, render_profile

__all__ = ["Comparison", "compare", "load_slim", "render_comparison", "render_html", "render_profile", "write_html"]
