"""The documentation holds: the README stays a front door, its links and the docs pages' links lead somewhere,
CI runs the README's test command, and docs/benchmarks.md is what the committed results say, every row
stamped with the commit and date it was measured on."""

import importlib.util
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def script(name: str) -> ModuleType:
    """A module of benchmarks/ (a folder of scripts, not a package), imported from its file."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def readme_commands() -> list[str]:
    """The README's two set-up commands: the lines of its first code block."""
    block = re.search(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    return block.group(1).strip().splitlines()


def prose(page: Path) -> str:
    """``page`` without its code blocks and code spans, where brackets are not links."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", page.read_text(), flags=re.S))


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the headings of ``page``."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    headings = re.findall(r"^#+ (.+)$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_the_benchmark_page_is_what_the_committed_results_say():
    tables = script("tables")
    assert tables.PAGE.read_text() == tables.render(), \
        "docs/benchmarks.md is out of date with benchmarks/results/: run python benchmarks/tables.py"


def test_every_row_of_the_benchmark_page_is_stamped_with_a_commit_and_a_date():
    lines = (ROOT / "docs" / "benchmarks.md").read_text().splitlines()
    rows = [line for line, below in itertools.zip_longest(lines, lines[1:], fillvalue="")  # not a header
            if line.startswith("| ") and not line.startswith("| ---") and not below.startswith("| ---")]
    assert len(rows) > 50
    unstamped = [row for row in rows if not re.search(r"\| `[0-9a-f]{7}` \d{4}-\d\d-\d\d \|$", row)]
    assert unstamped == []


def test_a_new_result_carries_its_commit_and_date_and_its_rows_show_them(tmp_path):
    common, tables = script("common"), script("tables")
    report = json.loads((tables.RESULTS / "report.json").read_text())
    del report["commit"], report["date"], report["stamp_source"]
    common.write_results(tmp_path / "report.json", report)
    written = json.loads((tmp_path / "report.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert written["commit"] == head and written["date"] == written["written"][:10]
    page = tables.render(tmp_path)
    assert f"| `{head[:7]}` {written['date']} |" in page
    assert "## The HTML report" in page and "## The profiler" not in page


def test_a_results_file_without_a_section_stops_the_page(tmp_path):
    tables = script("tables")
    (tmp_path / "new_bench.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"no section for new_bench.json: add one to benchmarks/tables.py"):
        tables.render(tmp_path)


def test_the_readme_is_a_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail to docs/"
    assert "DeepRebirth" in "\n".join(lines[:12])  # what rebirth is, on the first screen


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page):
    broken = []
    for target in LINK.findall(prose(page)):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no such heading")
    assert broken == []


def test_ci_runs_the_readme_test_command_which_sets_up_the_host_first():
    install, test = readme_commands()
    assert "pip install ." in install and "rebirth optimize" in install
    assert test.startswith("scripts/setup-host && ")
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == test, "the last line of .ci/run must be the README's second command"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_the_pages_describe_the_project_not_its_history(page):
    text = page.read_text().lower()
    found = [phrase for phrase in ("this issue", "this session", "since that run", "previous session",
                                   "session before", "the old gate", "now asks") if phrase in text]
    assert found == []
