"""Reports read Profiles (never devices): the terminal view, the before/after HTML report and regression checks."""

from reports.compare import Comparison, compare, load_slim
from reports.html import render_html, write_html
from reports.junit import write_junit
from reports.regress import (Check, CheckResult, Verdict, assert_no_regression, exit_code, failed, judge,
                             measure_run_noise, parse_check, parse_checks)
from reports.regress_view import render_verdicts
from reports.terminal import render_comparison, render_profile

__all__ = ["Check", "CheckResult", "Comparison", "Verdict", "assert_no_regression", "compare", "exit_code", "failed",
           "judge", "load_slim", "measure_run_noise", "parse_check", "parse_checks", "render_comparison",
           "render_html", "render_profile", "render_verdicts", "write_html", "write_junit"]
