"""rebirth as its users install it: one import name, a wheel that holds everything it reads at run time, and a
user's own ``models.py`` beside their network left alone."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import rebirth

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("contract", "devices", "models", "profiler", "reports", "results", "slimmer")


def installed() -> metadata.Distribution:
    """rebirth's distribution in this environment's site-packages (not a build's metadata in the checkout)."""
    found = [dist for dist in metadata.distributions(name="rebirth")
             if Path(str(dist.locate_file(""))).resolve() != ROOT]
    assert len(found) == 1, [str(dist.locate_file("")) for dist in found]
    return found[0]


def test_the_suite_imports_the_installed_rebirth():
    """A test run against the checkout's folders cannot see what the installed package lacks."""
    direct = installed().read_text("direct_url.json")
    if direct and json.loads(direct).get("dir_info", {}).get("editable"):
        pytest.skip("an editable install is the checkout itself")
    module = Path(rebirth.__file__).resolve()
    assert module == Path(str(installed().locate_file("rebirth/__init__.py"))).resolve()
    assert not module.is_relative_to(ROOT / "rebirth") and "site-packages" in module.parts


def test_every_part_is_a_subpackage_of_rebirth_and_nothing_else_is_top_level():
    for part in PARTS:
        link = ROOT / "rebirth" / part
        assert link.is_symlink() and link.resolve() == (ROOT / part).resolve(), part
    top_level = (installed().read_text("top_level.txt") or "rebirth").split()
    assert top_level == ["rebirth"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the checkout (a build leaves its metadata in the source folder)."""
    source, folder = tmp_path_factory.mktemp("source") / "rebirth", tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, source, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", ".tox", ".venv", "__pycache__", "*.egg-info", "build"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(folder), str(source)],
                   check=True, capture_output=True, timeout=600)
    return next(folder.glob("rebirth-*.whl"))


@pytest.mark.slow
def test_the_wheel_holds_only_rebirth_and_every_file_of_its_parts(wheel):
    """Everything rebirth reads at run time ships: the runner's C++ source, the report's templates, the taxonomy."""
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {name.split("/")[0] for name in names} == {"rebirth", wheel.name.split("-py3")[0] + ".dist-info"}
    files = {path.relative_to(ROOT).as_posix() for part in PARTS for path in (ROOT / part).rglob("*")
             if path.is_file() and "__pycache__" not in path.parts}
    assert {"devices/native/executor_runner.cpp", "reports/templates/report.html.j2", "profiler/taxonomy.toml"} <= files
    assert {f"rebirth/{file}" for file in files} <= names


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    """A new virtual environment with the wheel installed; its dependencies are this environment's (a
    .pth file points at them: installing torch again would take minutes and prove nothing here)."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", str(wheel)],
                   check=True, capture_output=True, timeout=300)  # the environment behind the .pth has rebirth too
    return home


USER_MODELS = '''import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(self.pool(torch.relu(self.bn(self.conv(x)))).flatten(1))
'''

USER_NET = '''import torch
from models import Net
from utils import SIZE


def make():
    torch.manual_seed(0)
    return Net().eval(), (torch.randn(1, 3, SIZE, SIZE),)
'''


@pytest.mark.slow
def test_installed_from_the_wheel_rebirth_leaves_the_users_models_alone_and_profiles(fresh_venv, tmp_path):
    bin_ = fresh_venv / "bin"
    env = dict(os.environ, REBIRTH_CACHE=str(tmp_path / "cache"))
    env.pop("PYTHONPATH", None)
    shown = subprocess.run([str(bin_ / "pip"), "show", "-f", "rebirth"], capture_output=True, text=True, env=env)
    files = shown.stdout.split("Files:", 1)[1].split()
    assert files and all(name.startswith(("rebirth/", "rebirth-")) or name.startswith("../../../bin/")
                         for name in files), files
    alone = subprocess.run([str(bin_ / "python"), "-c", "import models"], capture_output=True, text=True,
                           cwd=tmp_path, env=env)
    assert alone.returncode != 0 and "No module named 'models'" in alone.stderr
    user = tmp_path / "project"
    user.mkdir()
    (user / "models.py").write_text(USER_MODELS)
    (user / "utils.py").write_text("SIZE = 16\n")
    (user / "my_net.py").write_text(USER_NET)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def rebirth_(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([str(bin_ / "rebirth"), *args], capture_output=True, text=True, env=env,
                              cwd=elsewhere, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    rebirth_("export", f"{user}/my_net.py:make", "-o", str(tmp_path / "n.pte"))
    profiled = rebirth_("profile", str(tmp_path / "n.pte"), "--iterations", "3", "--json", str(tmp_path / "p.json"),
                        "--html", str(tmp_path / "p.html"))
    assert (tmp_path / "p.html").read_text().count('<section id="') == 7  # the templates came with the wheel
    profile = json.loads((tmp_path / "p.json").read_text())
    assert profile["device"]["runner_kind"] == "native", profiled.stdout
    assert Path(profile["device"]["runner"]).is_relative_to(tmp_path / "cache")
    rebirth_("slim", f"{user}/my_net.py:make", "--exact-only", "--skip", "reduce_channels,low_rank,int8",
             "--profile", str(tmp_path / "p.json"), "-o", str(tmp_path / "slim"))
    assert (tmp_path / "slim" / "slim.pte").is_file()
