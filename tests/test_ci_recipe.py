"""The CI recipe of docs/ci.md, run as a CI runner runs it: its YAML parsed, each ``run:`` step given to bash
as GitHub Actions does (``bash --noprofile --norc -eo pipefail``), in order, a failed step skipping the
rest but the ``if: always()`` ones, with ``$GITHUB_STEP_SUMMARY`` a file. The STF server is the stand-in
of ``tests/stf.py`` with emulated phones behind it; the checkout is a folder with ``model.pte``.

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


def test_the_ci_recipe_leases_profiles_judges_and_publishes(farm, firenet_ptes, tmp_path):  # noqa: F811
    stf, phones = farm
    stf: StfStandIn
    job = ci_recipe()["jobs"]["phones"]
    assert job["env"]["STF_TOKEN"] == "${{ secrets.STF_TOKEN }}"  # the token is a secret, not in the file
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(firenet_ptes["portable"], checkout / "model.pte")
    (checkout / ".venv").symlink_to(Path(sys.prefix))
    summary = tmp_path / "step-summary.md"
    env = dict(os.environ, STF_TOKEN=TOKEN, GITHUB_STEP_SUMMARY=str(summary), REBIRTH_CACHE=str(tmp_path / "cache"))
    for step in job["steps"]:
        if "run" in step:
            step["run"] = step["run"].replace("https://stf.lab", stf.url)

    # A run on main first, as docs/ci.md says, and the baseline saved from it.
    main_run = run_job({"steps": [step for step in job["steps"] if "farm run" in step.get("run", "")]}, checkout, env)
    assert [code for _, code, _ in main_run] == [0], main_run
    saved = subprocess.run([str(checkout / ".venv/bin/rebirth"), "baseline", "save", "main"], cwd=checkout, env=env,
                           capture_output=True, text=True)
    assert saved.returncode == 0, saved.stderr
    summary.unlink(missing_ok=True)

    # Then the job as a pull request runs it.
    ran = run_job(job, checkout, env)
    codes = [code for _, code, _ in ran]
    # The phones replay a real recorded run, so whether a 5% change can be told from its spread depends on
    # how busy this host was when it recorded: the check may pass (0) or be undecided (3), never regress.
    assert codes[0] == 0 and codes[1] in (0, 3) and codes[2:] == [0] * (len(ran) - 2), \
        "\n\n".join(f"$ {c}\n{o}" for c, _, o in ran)
    assert len(ran) == sum(1 for step in job["steps"] if "run" in step) - 1  # all but the venv step
    assert stf.leased() == ["s30"] and stf.violations == []  # ours given back; the other user's untouched
    published = summary.read_text()
    lines = published.splitlines()
    verdicts = [line for line in lines if line.startswith("**")]  # the farm run's, then the regression check's
    assert verdicts[0] == "**rebirth farm run: OK: 2 of 2 devices profiled**", published
    word = {0: "PASS", 3: "NO ANSWER"}[codes[1]]  # every phone of the farm run is judged, each on its own line
    assert verdicts[1].startswith(f"**rebirth regress: {word}: 4 checks on 2 devices"), published
    assert all(len(line) <= 80 for line in lines if line.startswith("|")), published
    assert TOKEN not in published and all(TOKEN not in output for _, _, output in ran)
    # What the upload step publishes exists: the JUnit file (one testsuite per phone) and the store.
    upload = next(step for step in job["steps"] if "upload-artifact" in step.get("uses", ""))
    for path in upload["with"]["path"].split():
        assert (checkout / path).exists(), path
    suites = ElementTree.parse(checkout / "regress.xml").getroot().findall("testsuite")
    assert sorted(suite.get("name") for suite in suites) == sorted([phones["s28"].address, phones["s29"].address])
    assert all(suite.get("failures") == "0" for suite in suites), (checkout / "regress.xml").read_text()
    # The cache step keeps the store the farm run writes to by default, with the baseline in it.
    cache = next(step for step in job["steps"] if "actions/cache" in step.get("uses", ""))
    assert (checkout / cache["with"]["path"] / "baselines" / "main").is_dir()
