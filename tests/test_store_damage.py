"""The SQLite result store survives damage (issue 25): a writer killed before its run is in, and a full disk. A
damaged run or database file is ``tests/test_store.py``'s."""

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
import sys, time
from pathlib import Path
from rebirth.results import save_run
from rebirth.results.database import DatabaseStore
from tests.synthetic import synthetic_profile

insert = DatabaseStore._insert

def stalled(self, run, blob):  # its run is in the open transaction: killed before it commits
    insert(self, run, blob)
    Path(sys.argv[2]).touch()
    time.sleep(600)

DatabaseStore._insert = stalled
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
    log = store / "rebirth.sqlite-wal"
    assert log.exists()  # left by the killed writer: the next opener is alone with it, and checks the store first
    assert [run.number for run in list_runs(store)] == [1, 2]  # the half-stored run is not read
    assert not log.exists()  # the last connection closed cleanly, the log was folded in
    assert cli.main(["results", "list", "--store", str(store)]) == 0
    out, err = capsys.readouterr()
    assert err == "" and len([line for line in out.splitlines()[1:] if line.strip()]) == 2
    assert save_run(synthetic_profile(ops=40, samples=30, seed=3), store).number == 3
    assert cli.main(["results", "check", "--store", str(store)]) == 0
    assert capsys.readouterr().out.endswith("3 readable runs, 0 set aside; integrity ok\n")


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
        for seed in range(400):
            save_run(synthetic_profile(ops=40, samples=30, seed=seed), store)
            stored += 1
    assert "database or disk is full" in str(raised.value) and "\n" not in str(raised.value)
    assert stored > 1
    assert [run.number for run in list_runs(store)] == list(range(1, stored + 1))  # each whole, none lost
    assert all(run.profile.latency.raw for run in list_runs(store))

    page = small_disk / "history.html"
    assert cli.main(["history", "--store", str(store), "-o", str(page)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the history" in err and not page.exists()
    assert cli.main(["history", "--store", str(store), "-o", str(tmp_path / "history.html")]) == 0
    assert (tmp_path / "history.html").stat().st_size > 100_000  # the runs it could store are all there
    assert cli.main(["results", "check", "--store", str(store)]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"{stored} readable runs, 0 set aside; integrity ok")
