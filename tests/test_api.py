"""The Python API as a notebook uses it: the README's example, run as written."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python"):]
    return re.search(r"```python\n(.*?)```", section, flags=re.S)[1]


def test_importing_rebirth_is_light_and_names_the_api(tmp_path):
    code = ("import sys, rebirth\nprint(sorted({'torch', 'executorch', 'numpy', 'pandas'} & set(sys.modules)))\n"
            "print(all(callable(getattr(rebirth, name)) for name in "
            "('profile', 'compare', 'slim', 'optimize', 'regress', 'history', 'load', 'assert_no_regression')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.stdout.split("\n")[:2] == ["[]", "True"], done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.timeout(1800)  # trains GoogLeNet-small when no earlier test of the session did: minutes on a busy host
def test_the_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_example(), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert re.search(r"non-tensor share \d+%", out) and re.search(r"^\d+\.\d\dx \(", out, flags=re.M), out
    assert (tmp_path / "out" / "slim.pte").is_file()
