"""The result store survives damage (issue 25): a writer killed before its run is in, and a full disk. A truncated
or foreign run file is ``tests/test_farm.py``'s."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rebirth import cli
from rebirth.contract.errors import InputError
from rebirth.results import list_runs, save_run
from tests.synthetic import synthetic_profile

ROOT = Path(__file__).resolve().parent.parent

KILLED_WRITER = """
import os, sys, time
from pathlib import Path
from rebirth.results import save_run
from tests.synthetic import synthetic_profile

def stalled(source, target):  # its run is written and fsync'd: killed before it takes its number
    Path(sys.argv[2]).touch()
    time.sleep(600)

os.link = stalled
save_run(synthetic_profile(ops=40, samples=30, seed=9), Path(sys.argv[1]))
"""


def test_a_writer_killed_before_its_run_is_in_leaves_every_other_run_and_no_number_taken(tmp_path, capsys):
    store = tmp_path / "store"
    for seed in (1, 2):
        save_run(synthetic_profile(ops=40, samples=30, seed=seed), store)
    ready = tmp_path / "written"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(store), str(ready)], cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert writer.poll() is None and time.monotonic() < deadline, "the writer ended before its run was in"
            time.sleep(0.02)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    runs = store / list_runs(store)[0].fingerprint / "runs"
    temporary = [path.name for path in runs.iterdir() if path.name.endswith(".tmp")]
    assert sorted(path.name for path in runs.iterdir() if path.name not in temporary) == ["0001.json", "0002.json"]
    assert len(temporary) == 1 and temporary[0].startswith("."), temporary
    assert [run.number for run in list_runs(store)] == [1, 2]  # the half-stored run is not read
    assert cli.main(["results", "list", "--store", str(store)]) == 0
    out, err = capsys.readouterr()
    assert err == "" and len([line for line in out.splitlines()[1:] if line.strip()]) == 2
    assert save_run(synthetic_profile(ops=40, samples=30, seed=3), store).name == "0003.json"
    stale = runs / temporary[0]
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))  # an hour on, the next writer clears it
    save_run(synthetic_profile(ops=40, samples=30, seed=4), store)
    assert not stale.exists() and [run.number for run in list_runs(store)] == [1, 2, 3, 4]


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs: a disk that fills up."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        reason = f"cannot mount a small tmpfs here ({mounted.stderr.strip() or 'mount failed'}): needs root"
        if os.environ.get("CI") and os.geteuid() == 0:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_is_one_line_and_every_run_stored_before_stays_whole(small_disk, tmp_path, capsys):
    store = small_disk / "store"
    stored = 0
    with pytest.raises(InputError, match="cannot store the run") as raised:
        for seed in range(200):
            save_run(synthetic_profile(ops=40, samples=30, seed=seed), store)
            stored += 1
    assert "No space left on device" in str(raised.value) and "\n" not in str(raised.value)
    assert stored > 1
    assert [run.number for run in list_runs(store)] == list(range(1, stored + 1))  # each whole, none lost
    assert not list(store.glob("*/runs/.*.tmp"))  # the failed write took its temporary file with it

    assert cli.main(["baseline", "save", "main", "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the baseline" in err and "Traceback" not in err
    assert not (store / "baselines" / "main").exists() and not list((store / "baselines").glob(".*"))

    page = small_disk / "history.html"
    assert cli.main(["history", "--store", str(store), "-o", str(page)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the history" in err and not page.exists()
    assert cli.main(["history", "--store", str(store), "-o", str(tmp_path / "history.html")]) == 0
    assert (tmp_path / "history.html").stat().st_size > 100_000  # the runs it could store are all there
