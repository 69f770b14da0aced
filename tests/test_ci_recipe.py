"""The CI recipe of docs/ci.md, run as a CI runner runs it: its YAML parsed, each ``run:`` step given to bash
as GitHub Actions does (``bash --noprofile --norc -eo pipefail``), in order, a failed step skipping the
rest but the ``if: always()`` ones, with ``$GITHUB_STEP_SUMMARY`` a file. The STF server is the stand-in
of ``tests/stf.py`` with emulated phones behind it; the checkout is a clone whose ``origin/main`` holds the base
branch's ``model.pte``, on a pull request's branch.

What cannot run here is said, not faked: the ``uses:`` steps (checkout, cache, upload-artifact) are
GitHub's actions, and the venv step is replaced by a ``.venv`` that points at this test's own
environment (the README's second command installs the project exactly so)."""

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml

from tests.stf import StfStandIn
from tests.test_farm import recordings  # noqa: F401  (a fixture)
from tests.test_stf import TOKEN, api_description, farm  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow  # runs the CI recipe's whole job on emulated phones

ROOT = Path(__file__).resolve().parent.parent


RECIPE = ROOT / "docs" / "ci.md"


def ci_recipe() -> dict:
    """The YAML block of docs/ci.md that defines a job on STF phones."""
    blocks = re.findall(r"```yaml\n(.*?)```", RECIPE.read_text(), flags=re.S)
    recipes = [yaml.safe_load(block) for block in blocks if "STF_TOKEN" in block]
    assert len(recipes) == 1, f"{RECIPE} should have one CI recipe for phones leased from STF"
    return recipes[0]


def run_job(job: dict, checkout: Path, env: dict[str, str]) -> list[tuple[str, int]]:
    """Run the job's ``run:`` steps as GitHub Actions would; ``(command, exit code)`` of each step run."""
    ran, failed = [], False
    for step in job["steps"]:
        if "run" not in step:
            continue
        if "pip install" in step["run"]:  # the venv step: .venv is this environment (see the module's doc)
            continue
        if failed and "always()" not in str(step.get("if", "")):
            continue
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=checkout,
                              env=env, capture_output=True, text=True, timeout=600)
        ran.append((step["run"], done.returncode, done.stdout + done.stderr))
        failed = failed or done.returncode != 0
    return ran


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args], cwd=cwd, check=True,
                   capture_output=True)


def pull_request_checkout(tmp_path: Path, model: Path) -> Path:
    """A clone (all branches fetched, as ``fetch-depth: 0`` does) of a repository whose main holds ``model`` as
    model.pte, on a pull request's branch that changes something else."""
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    _git(tmp_path, "clone", "-q", str(origin), str(work))
    shutil.copy(model, work / "model.pte")
    _git(work, "add", "model.pte")
    _git(work, "commit", "-q", "-m", "the model")
    _git(work, "push", "-q", "origin", "HEAD:main")
    checkout = tmp_path / "checkout"
    _git(tmp_path, "clone", "-q", str(origin), str(checkout))
    _git(checkout, "checkout", "-q", "-b", "pull-request")
    (checkout / "README").write_text("a change that leaves the model as it is\n")
    _git(checkout, "add", "README")
    _git(checkout, "commit", "-q", "-m", "a pull request")
    return checkout


def test_the_ci_recipe_gates_side_by_side_and_passes_an_unchanged_build_on_its_first_run(
        farm, firenet_ptes, tmp_path):  # noqa: F811
    stf, phones = farm
    stf: StfStandIn
    job = ci_recipe()["jobs"]["phones"]
    assert job["env"]["STF_TOKEN"] == "${{ secrets.STF_TOKEN }}"  # the token is a secret, not in the file
    checkout = pull_request_checkout(tmp_path, firenet_ptes["portable"])
    (checkout / ".venv").symlink_to(Path(sys.prefix))
    summary = tmp_path / "step-summary.md"
    env = dict(os.environ, STF_TOKEN=TOKEN, GITHUB_STEP_SUMMARY=str(summary), GITHUB_BASE_REF="main",
               REBIRTH_CACHE=str(tmp_path / "cache"))
    env.pop("REBIRTH_RESULTS", None)
    for step in job["steps"]:
        if "run" in step:
            step["run"] = step["run"].replace("https://stf.lab", stf.url)
    gate = next(step["run"] for step in job["steps"] if "regress" in step.get("run", ""))
    assert "--ab" in gate and "--baseline" not in gate  # the gate measures both builds, needing no history

    # The pull request's first run: an empty store, no baseline.
    ran = run_job(job, checkout, env)
    codes = [code for _, code, _ in ran]
    assert codes == [0] * len(ran), "\n\n".join(f"$ {c}\n{o}" for c, _, o in ran)
    assert len(ran) == sum(1 for step in job["steps"] if "run" in step) - 1  # all but the venv step
    assert (checkout / "base.pte").read_bytes() == (checkout / "model.pte").read_bytes()
    assert stf.leased() == ["s30"] and stf.violations == []  # ours given back; the other user's untouched
    published = summary.read_text()
    lines = published.splitlines()
    verdicts = [line for line in lines if line.startswith("**")]  # the gate's, the farm run's, the history's
    assert verdicts[0].startswith("**rebirth regress: PASS: 4 checks on 2 devices"), published
    assert verdicts[1] == "**rebirth farm run: OK: 2 of 2 devices profiled**", published
    assert verdicts[2].startswith("**rebirth history: 1 series"), published  # two phones of one fingerprint
    assert all(len(line) <= 80 for line in lines if line.startswith("|")), published
    assert TOKEN not in published and all(TOKEN not in output for _, _, output in ran)
    # What the upload step publishes exists: the JUnit file (one testsuite per phone) and the store.
    upload = next(step for step in job["steps"] if "upload-artifact" in step.get("uses", ""))
    for path in upload["with"]["path"].split():
        assert (checkout / path).exists(), path
    suites = ElementTree.parse(checkout / "regress.xml").getroot().findall("testsuite")
    assert sorted(suite.get("name") for suite in suites) == sorted([phones["s28"].address, phones["s29"].address])
    assert all(suite.get("failures") == "0" and suite.get("errors") == "0" for suite in suites), \
        (checkout / "regress.xml").read_text()
    # The cache step keeps the store the farm run wrote every phone's run to.
    cache = next(step for step in job["steps"] if "actions/cache" in step.get("uses", ""))
    from rebirth.results import list_runs

    assert len(list_runs(checkout / cache["with"]["path"])) == 2
