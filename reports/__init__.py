"""Reports read records (never devices): a Profile or a before/after pair in the terminal and as one HTML
page, the slimmer's plan and results, devices and the farm in the terminal, and regression verdicts in the
terminal, as JUnit XML and as Markdown.

Importing this package imports rich and numpy, not torch.
"""

from rebirth.reports.compare import Comparison, compare
from rebirth.reports.device_view import check_lines, render_device, render_device_list
from rebirth.reports.farm_view import render_farm_summary, results_table
from rebirth.reports.html import render_html, write_html, write_report
from rebirth.reports.junit import write_junit
from rebirth.reports.markdown import write_summary
from rebirth.reports.regress_view import render_verdicts
from rebirth.reports.slim_view import render_plan, render_slim
from rebirth.reports.terminal import render_comparison, render_profile

__all__ = ["Comparison", "check_lines", "compare", "render_comparison", "render_device", "render_device_list",
           "render_farm_summary", "render_html", "render_plan", "render_profile", "render_slim", "render_verdicts",
           "results_table", "write_html", "write_junit", "write_report",
           "write_summary"]
