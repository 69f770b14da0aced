"""Regression verdicts as JUnit XML, the format CI systems (Jenkins, GitLab, GitHub Actions) display.

One ``testsuite`` per device, one ``testcase`` per model x check (``classname`` is the model, ``name``
the check). A regression is a ``<failure>``, a failed run one ``<testcase>`` with an ``<error>``, and a
undecided or unknown check is ``<skipped>`` with its reason.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree

from rebirth.contract.checks import FAILED, REGRESSION, UNDECIDED, UNKNOWN, CheckResult, Verdict, describe
from rebirth.contract.files import write_text_atomic

SUITES = "rebirth regress"
RUN = "run"
"""The ``name`` of the single testcase of a failed run."""
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def write_junit(path: str | os.PathLike, verdicts: Sequence[Verdict]) -> None:
    """Write ``verdicts`` as JUnit XML to ``path`` atomically."""
    root = junit_element(verdicts)
    ElementTree.indent(root)
    text = ElementTree.tostring(root, encoding="unicode", xml_declaration=True)
    write_text_atomic(Path(path), text + "\n")


def junit_element(verdicts: Sequence[Verdict]) -> ElementTree.Element:
    """The ``<testsuites>`` element, verdicts grouped by device in the order they come."""
    root = ElementTree.Element("testsuites", name=SUITES)
    by_device: dict[str, list[Verdict]] = {}
    for verdict in verdicts:
        by_device.setdefault(verdict.device, []).append(verdict)
    for device, group in by_device.items():
        root.append(_suite(device, group))
    _count(root)
    return root


def _suite(device: str, verdicts: Sequence[Verdict]) -> ElementTree.Element:
    suite = ElementTree.Element("testsuite", name=_text(device))
    for verdict in verdicts:
        if verdict.status == FAILED:
            error = _text(verdict.error or "")
            case = ElementTree.SubElement(suite, "testcase", classname=_text(verdict.model), name=RUN)
            ElementTree.SubElement(case, "error", message=error, type="RunFailed").text = error
        for result in verdict.results:
            suite.append(_case(verdict.model, result))
    _count(suite)
    return suite


def _case(model: str, result: CheckResult) -> ElementTree.Element:
    case = ElementTree.Element("testcase", classname=_text(model), name=str(result.check))
    line = _text(describe(result))
    if result.status == REGRESSION:
        ElementTree.SubElement(case, "failure", message=line, type="Regression").text = line
    elif result.status in (UNDECIDED, UNKNOWN):
        ElementTree.SubElement(case, "skipped", message=line)
    return case


def _count(element: ElementTree.Element) -> None:
    """Set the tests, failures, errors and skipped attributes from the testcases below ``element``."""
    cases = list(element.iter("testcase"))
    element.set("tests", str(len(cases)))
    for tag, attribute in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
        element.set(attribute, str(sum(case.find(tag) is not None for case in cases)))


def _text(value: str) -> str:
    """``value`` without the control characters XML 1.0 cannot hold (runner output may carry them)."""
    return _NOT_XML.sub("\ufffd", value)
