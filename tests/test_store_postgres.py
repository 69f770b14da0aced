"""A team's shared result store on a real PostgreSQL server (Debian's ``postgresql``), started for these tests in
a temporary folder: the same store as SQLite's, reached with ``--store postgresql://...`` or $REBIRTH_RESULTS."""

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rebirth import cli
from rebirth.results import list_runs, open_store, save_run
from tests.synthetic import device_run, synthetic_profile
from tests.test_store import WRITER, _file_store

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, else where Debian's ``postgresql`` puts it."""
    return shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
                                      None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def postgres_server() -> Iterator[Callable[[], str]]:
    """A PostgreSQL server on 127.0.0.1, its data in a temporary folder, run as the ``postgres`` user when run as
    root (the server refuses root); yields a function that makes a fresh database and returns its URL.

    Raises:
        FileNotFoundError: no PostgreSQL server programs here.
    """
    import psycopg

    initdb, pg_ctl = _tool("initdb"), _tool("pg_ctl")
    if not (initdb and pg_ctl):
        raise FileNotFoundError("no PostgreSQL server here: scripts/setup-host installs Debian's postgresql")
    folder = Path(tempfile.mkdtemp(prefix="rebirth-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "rebirth", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True)
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                        f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={folder}", "start"],
                       check=True, capture_output=True)
        made = iter(range(1000))

        def database() -> str:
            name = f"store{next(made)}"
            with psycopg.connect(f"postgresql://rebirth@127.0.0.1:{port}/postgres", autocommit=True) as connection:
                connection.execute(f"CREATE DATABASE {name}")
            return f"postgresql://rebirth@127.0.0.1:{port}/{name}"

        yield database
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def server():
    """``postgres_server`` for these tests; skipped where there is none, except in CI."""
    try:
        if not os.environ.get("CI"):
            pytest.importorskip("psycopg")
        with postgres_server() as database:
            yield database
    except FileNotFoundError as missing:
        if os.environ.get("CI"):
            pytest.fail(str(missing))
        pytest.skip(str(missing))


def rebirth(*args) -> int:
    return cli.main([str(arg) for arg in args])


def test_a_team_store_on_postgresql_stores_lists_baselines_regresses_and_draws_the_history(server, tmp_path, capsys,
                                                                                           monkeypatch):
    url = server()
    for name in ("p1", "p2"):
        for seed in (11, 12, 13, 1):
            save_run(device_run(name, seed=seed), url, commit=f"c{seed}")
    assert rebirth("baseline", "save", "main", "--store", url) == 0
    assert capsys.readouterr().out == f"baseline main: 2 results in {url}\n"
    save_run(device_run("p1", seed=2), url, batch="today")
    save_run(device_run("p2", seed=3, factor=1.25), url, batch="today")
    monkeypatch.setenv("REBIRTH_RESULTS", url)  # the environment points every command at the team's store
    assert rebirth("results", "list") == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [row[1] for row in rows] == ["0001", "0002", "0003", "0004", "0005"] * 2
    assert rebirth("regress", "--baseline", "main", "--fail", "p50:10%") == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "regression" in out and "p2" in out
    page = tmp_path / "history.html"
    assert rebirth("history", "-o", page) == 0
    assert "2 series" in capsys.readouterr().out and page.stat().st_size > 100_000
    with open_store(url) as store:
        assert store.baseline_members() == {(run.fingerprint, 4): ("main",) for run in store.runs(model=None)}
        assert len(store.frame()) == 10
        assert store.check() == []


def test_runners_writing_at_once_get_distinct_numbers(server):
    url = server()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, url, "25", f"runner{index}"], cwd=ROOT,
                                env=dict(os.environ, PYTHONPATH=str(ROOT))) for index in range(4)]
    assert [writer.wait(timeout=300) for writer in writers] == [0] * 4
    runs = list_runs(url)
    assert [run.number for run in runs] == list(range(1, 101))
    assert all(sum(run.commit == f"runner{index}" for run in runs) == 25 for index in range(4))
    assert runs[0].profile == synthetic_profile(ops=20, samples=5, seed=0)


def test_a_file_store_is_imported_into_the_team_store(server, tmp_path, capsys):
    url = server()
    folder = tmp_path / "rebirth-results"
    _file_store(folder, {"p1": [device_run("p1", seed=seed) for seed in range(3)]})
    assert rebirth("results", "import", folder, "--store", url) == 0
    assert capsys.readouterr().out.startswith(f"imported the file store in {folder} into {url}: 3 run files: 3 runs")
    assert [run.number for run in list_runs(url)] == [1, 2, 3]


def test_an_unreachable_server_is_one_line_without_its_password(capsys):
    closed = _free_port()
    started = time.monotonic()
    assert rebirth("results", "list", "--store", f"postgresql://rebirth:s3cret@127.0.0.1:{closed}/store") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the store" in err and "s3cret" not in err and "***" in err
    assert time.monotonic() - started < 30
