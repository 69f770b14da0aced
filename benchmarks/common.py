"""What every benchmark script shares: results written with the machine, commit and date they were measured on (as
pytest-benchmark saves ``machine_info`` and ``commit_info``). The scripts import rebirth as installed (the
README's first command installs it)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the benchmarks reuse the tests' stand-ins (tests.stf, tests.synthetic); appended,
    sys.path.append(str(ROOT))  # so that rebirth itself is the installed one


def machine() -> dict[str, Any]:
    """The host the numbers were measured on."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "machine": platform.machine(), "platform": platform.platform(),
            "python": platform.python_version(), "load_average_at_write": load}


def commit() -> str | None:
    """The git commit of the project the numbers were measured with (None outside a checkout)."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def write_results(path: Path, results: dict[str, Any]) -> None:
    """Write ``results`` as indented JSON, with the machine, commit, date and time they come from.

    docs/benchmarks.md stamps every row with that commit and date (``python benchmarks/tables.py``).

    Raises:
        SystemExit: the commit is unknown (not run from a git checkout): a result must say what it measured.
    """
    measured_with = commit()
    if measured_with is None:
        raise SystemExit(f"{path} not written: no git commit to stamp it with (run from a checkout)")
    now = datetime.datetime.now(datetime.UTC)
    stamped = {"machine": machine(), "commit": measured_with, "date": now.date().isoformat(),
               "written": now.isoformat(timespec="seconds"), **results}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stamped, indent=1) + "\n")
    print(f"wrote {path}")


class Silent:
    """A farm listener that shows nothing."""

    def stage(self, device, stage):
        pass

    def progress(self, device, stage, done, total):
        pass

    def finished(self, run):
        pass
