"""The layering is a tested contract: the import rules in pyproject.toml hold, no module imports itself
back through others, the light packages stay light, and a wrong import is caught."""

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent


def lint_imports(folder: Path) -> subprocess.CompletedProcess:
    """import-linter's command on the tree in ``folder`` (its pyproject.toml holds the contracts)."""
    command = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
               "sys.exit(lint_imports_command())", "--no-cache"]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(folder), "PATH": "/usr/bin:/bin"})


def test_the_import_contracts_hold():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 kept, 0 broken" in done.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("reports/units.py", "from rebirth.devices import open_device", "Reports read records"),
    ("contract/stats.py", "import torch", "The contract is light"),
    ("devices/runlog.py", "from rebirth.models import parse_spec", "Devices run .pte files"),
    ("profiler/trace.py", "from rebirth.slimmer import plan_offers", "One direction"),
])
def test_a_wrong_import_breaks_a_contract(tmp_path, module, line, contract):
    shutil.copytree(ROOT / "rebirth", tmp_path / "rebirth", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / "rebirth" / module
    target.write_text(target.read_text() + f"\n\ndef _wrong():\n    {line}\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout
    broken = [text for text in done.stdout.split("\n\n") if "BROKEN" in text]
    assert len(broken) == 1 and contract in broken[0], done.stdout


def test_no_module_imports_itself_back():
    graph = grimp.build_graph("rebirth")
    cycles = [(module, imported) for module in graph.modules
              for imported in graph.find_modules_directly_imported_by(module)
              if graph.chain_exists(importer=imported, imported=module)]
    assert cycles == []


def test_the_command_line_and_the_contract_import_nothing_heavy(tmp_path):
    code = ("import sys, rebirth.cli, rebirth.contract, rebirth.devices, rebirth.models, rebirth.profiler\n"
            "import rebirth.results\n"
            "heavy = {'torch', 'executorch', 'numpy', 'pandas', 'plotly'} & set(sys.modules)\n"
            "print(sorted(heavy))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
