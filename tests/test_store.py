"""The result store in SQLite (issue 25): numbering under parallel writers (threads and processes), summaries
beside compressed Profiles, baselines, damaged rows set aside, and the import of an earlier rebirth's file
store with every run file accounted for."""

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rebirth import cli
from rebirth.contract.errors import InputError
from rebirth.contract.profile import Profile
from rebirth.contract.stored import StoredRun, device_fingerprint, key_of
from rebirth.results import store
from rebirth.results.database import DatabaseStore
from tests.synthetic import device_run, synthetic_profile

ROOT = Path(__file__).resolve().parent.parent


def rebirth(*args) -> int:
    return cli.main([str(arg) for arg in args])


# -- writing and reading ---------------------------------------------------------------------------------------

def test_parallel_threads_get_distinct_numbers_and_whole_runs(tmp_path):
    profile = synthetic_profile(ops=50, samples=5)
    with store.open_store(tmp_path) as opened, ThreadPoolExecutor(max_workers=16) as pool:
        stored = list(pool.map(lambda _: opened.save_run(profile, "abc"), range(40)))
    assert sorted(run.number for run in stored) == list(range(1, 41))
    runs = store.list_runs(tmp_path)
    assert [run.number for run in runs] == list(range(1, 41))
    assert all(run.profile == profile and run.commit == "abc" for run in runs)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["rebirth.sqlite", "rebirth.sqlite.lock"]


WRITER = """
import sys
from rebirth.results import open_store
from tests.synthetic import device_run, synthetic_profile

with open_store(sys.argv[1]) as store:
    for index in range(int(sys.argv[2])):
        store.save_run(synthetic_profile(ops=20, samples=5, seed=index), sys.argv[3])
"""


def test_parallel_processes_get_distinct_numbers(tmp_path):
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), "25", f"writer{index}"], cwd=ROOT,
                                env=dict(os.environ, PYTHONPATH=str(ROOT))) for index in range(4)]
    assert [writer.wait(timeout=300) for writer in writers] == [0] * 4
    runs = store.list_runs(tmp_path)
    assert [run.number for run in runs] == list(range(1, 101))
    assert sorted({run.commit for run in runs}) == [f"writer{index}" for index in range(4)]
    assert all(sum(run.commit == f"writer{index}" for run in runs) == 25 for index in range(4))


def test_a_run_keeps_its_summary_beside_its_compressed_profile(tmp_path):
    profile = device_run("p1", seed=1)
    run = store.save_run(profile, tmp_path, "abc", batch="b1", branch="main")
    assert run.where == f"{tmp_path / 'rebirth.sqlite'}#{device_fingerprint(profile.device)}/0001"
    [read] = store.list_runs(tmp_path)
    assert "profile" not in read.__dict__  # a listing reads the summary, not the Profile
    assert (read.summary.p50_ms, read.summary.peak_rss_bytes, read.summary.noise) == \
        (profile.latency.p50, profile.memory.peak_rss_bytes, ())
    assert read.summary.p50_low_ms < profile.latency.p50 < read.summary.p50_high_ms
    assert (read.commit, read.batch, read.branch, read.model_sha256) == ("abc", "b1", "main", profile.model.sha256)
    assert read.profile == profile
    with sqlite3.connect(tmp_path / "rebirth.sqlite") as connection:
        [(size,)] = connection.execute("SELECT length(profile) FROM runs").fetchall()
    assert size < len(json.dumps(profile.to_dict())) / 3


def test_a_failed_write_leaves_no_run_and_takes_no_number(tmp_path, monkeypatch):
    profile = synthetic_profile(ops=50, samples=5)
    store.save_run(profile, tmp_path)
    insert = DatabaseStore._insert

    def full(self, run, blob):
        insert(self, run, blob)
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(DatabaseStore, "_insert", full)
    with pytest.raises(InputError, match=r"cannot store the run \(database or disk is full\)"):
        store.save_run(profile, tmp_path)
    monkeypatch.undo()
    assert [run.number for run in store.list_runs(tmp_path)] == [1]
    assert store.save_run(profile, tmp_path).number == 2


def test_fingerprint_and_key(tmp_path):
    profile = synthetic_profile(ops=50, samples=5, source="zoo:googlenet")
    fingerprint, key = key_of(profile)
    assert fingerprint.startswith("Pixel_8-Android_15-") and len(fingerprint.rsplit("-", 1)[1]) == 8
    assert key == "zoo:googlenet@xnnpack"
    rebuilt = dataclasses.replace(profile, device=dataclasses.replace(profile.device, runner="/other/runner"))
    moved = dataclasses.replace(profile, model=dataclasses.replace(profile.model, source="/ci/checkout/net.pte"))
    assert key_of(rebuilt)[0] != fingerprint and key_of(moved)[1] == "net.pte@xnnpack"
    assert store.save_run(profile, tmp_path).fingerprint == fingerprint
    # With the build fingerprint and the runner's hash recorded, those name the device instead.
    described = dataclasses.replace(profile.device, build="google/husky/husky:15/AP4A.250105.002/12701944:user/"
                                    "release-keys", runner_sha256="ab" * 32)
    recorded = device_fingerprint(described)
    assert recorded == "Pixel_8-15_AP4A.250105.002_12701944-abababab"
    newer = dataclasses.replace(described, build=described.build.replace("12701944", "12800000"))
    assert device_fingerprint(newer) != recorded
    assert device_fingerprint(dataclasses.replace(described, runner_sha256="cd" * 32)) != recorded


def test_results_list_shows_the_latest_runs(tmp_path, capsys):
    assert rebirth("results", "list", "--store", tmp_path) == 0
    assert capsys.readouterr().out == f"no stored runs in {tmp_path / 'rebirth.sqlite'}\n"
    store.save_run(synthetic_profile(ops=50, samples=5, source="zoo:googlenet"), tmp_path, "0123456789abcdef")
    store.save_run(synthetic_profile(ops=50, samples=5, source="zoo:alexnet", device="p8"), tmp_path)
    assert rebirth("results", "list", "--store", tmp_path) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["fingerprint", "run", "device", "model", "commit", "time", "p50", "peak", "RSS"]
    assert lines[1].split()[1:5] == ["0001", "pixel-8", "zoo:googlenet@xnnpack", "0123456789"]
    assert lines[2].split()[1:5] == ["0002", "p8", "zoo:alexnet@xnnpack", "-"]
    assert len(lines) == 3
    assert rebirth("results", "list", "--store", tmp_path, "--model", "zoo:alexnet") == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert rebirth("results", "list", "--store", tmp_path, "--last", "1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[1] == "0002" and lines[-1] == "(1 earlier runs not shown: --last N or --every)"


def test_a_baseline_names_the_latest_run_of_each_device_and_model_and_is_not_overwritten(tmp_path, capsys,
                                                                                         monkeypatch):
    monkeypatch.setenv("REBIRTH_RESULTS", str(tmp_path))
    older = synthetic_profile(ops=50, samples=5, source="zoo:googlenet", seed=1)
    newer = synthetic_profile(ops=50, samples=5, source="zoo:googlenet", seed=2)
    other = synthetic_profile(ops=50, samples=5, source="zoo:alexnet", seed=3)
    for profile in (older, newer, other):
        store.save_run(profile, tmp_path)
    assert rebirth("baseline", "save", "main") == 0
    assert capsys.readouterr().out == f"baseline main: 2 results in {tmp_path / 'rebirth.sqlite'}\n"
    baseline = store.load_baseline(None, "main")
    assert baseline == {key_of(newer): newer, key_of(other): other}
    store.save_run(synthetic_profile(ops=50, samples=5, source="zoo:googlenet", seed=4), tmp_path)
    assert rebirth("baseline", "save", "main") == 2
    assert "baseline 'main' exists; pass --force" in capsys.readouterr().err
    assert store.load_baseline(tmp_path, "main") == baseline
    assert rebirth("baseline", "save", "main", "--force", "--model", "zoo:googlenet") == 0
    assert [profile.model.sha256 for profile in store.load_baseline(tmp_path, "main").values()] == [f"{4:064x}"]
    assert store.baseline_members(tmp_path) == {(key_of(newer)[0], 4): ("main",)}
    with pytest.raises(InputError, match="no baseline 'nightly'.*baselines: main"):
        store.load_baseline(tmp_path, "nightly")
    assert rebirth("baseline", "save", "../x") == 2


def test_a_run_file_a_user_kept_is_still_a_result(tmp_path):
    profile = synthetic_profile(ops=50, samples=5)
    run = store.save_run(profile, tmp_path / "s", "abc")
    kept = tmp_path / "kept.json"
    kept.write_text(json.dumps(run.to_dict()))
    assert store.load_result(kept) == profile
    assert StoredRun.load(kept).commit == "abc"


def test_a_frame_of_every_run(tmp_path):
    import rebirth as api

    for seed in (1, 2, 3):
        store.save_run(device_run("p1", seed=seed), tmp_path, f"c{seed}")
    with api.store(tmp_path) as opened:
        frame = opened.frame()
    assert list(frame["number"]) == [1, 2, 3] and list(frame["commit"]) == ["c1", "c2", "c3"]
    assert str(frame["time"].dtype).startswith("datetime64") and frame["p50_ms"].gt(0).all()


def test_a_path_that_is_not_a_store_is_one_line(tmp_path, capsys):
    foreign = tmp_path / "notes.sqlite"
    foreign.write_bytes(b"these are my notes, not a database" * 100)
    assert rebirth("results", "list", "--store", foreign) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a rebirth store, or damaged" in err and "Traceback" not in err
    assert foreign.read_bytes().startswith(b"these are my notes")  # nothing written over it


# -- damage ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated profile", "foreign summary"])
def test_a_damaged_run_is_named_once_set_aside_and_the_rest_of_the_store_stays_usable(tmp_path, capsys, damage):
    """Issue 25: one run cut short made `results list` and `regress` exit 2 for every device."""
    for name in ("p1", "p2"):
        for seed in (11, 12, 13, 1):
            store.save_run(device_run(name, seed=seed), tmp_path)
    assert rebirth("baseline", "save", "main", "--store", tmp_path) == 0
    fingerprint = store.list_runs(tmp_path, device="p1")[0].fingerprint
    with sqlite3.connect(tmp_path / "rebirth.sqlite") as connection:
        change = ("UPDATE runs SET profile = substr(profile, 1, 300)" if damage == "truncated profile"
                  else "UPDATE runs SET noise = 'busy?', p50_ms = 'fast'")
        connection.execute(f"{change} WHERE fingerprint = ? AND number = 2", (fingerprint,))
    capsys.readouterr()
    listing = ["results", "list", "--store", tmp_path] + (["--every"] if damage == "foreign summary" else [])
    assert rebirth(*listing) == 0
    out, err = capsys.readouterr()
    if damage == "truncated profile":  # a listing reads summaries: the damage shows when the Profile is read
        assert err == "" and len(out.splitlines()) == 9
        assert rebirth("results", "check", "--store", tmp_path) == 1
        out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{fingerprint}/0002" in lines[0] and "cannot be read" in lines[0], err
    assert "set aside" in lines[0] and "Traceback" not in err
    assert [run.number for run in store.list_runs(tmp_path, device="p1")] == [1, 3, 4]
    assert store.save_run(device_run("p1", seed=2), tmp_path).number == 5  # the set-aside number stays taken
    assert rebirth("regress", "--baseline", "main", "--store", tmp_path, "--fail", "p50:25%") == 0
    assert "cannot be read" not in capsys.readouterr().err  # named once: set aside, it is not read again
    assert rebirth("results", "check", "--store", tmp_path) == 0
    out = capsys.readouterr().out
    assert f"set aside: {fingerprint}/0002" in out
    assert out.rstrip().endswith("8 readable runs, 1 set aside; integrity ok")


def test_a_damaged_database_file_is_one_line_and_the_check_says_so(tmp_path, capsys):
    for seed in range(30):
        store.save_run(device_run("p1", seed=seed), tmp_path)
    database = tmp_path / "rebirth.sqlite"
    data = bytearray(database.read_bytes())
    page = 4096
    data[3 * page:6 * page] = os.urandom(3 * page)  # pages in the middle overwritten, as a bad copy would
    database.write_bytes(bytes(data))
    assert rebirth("results", "list", "--store", tmp_path, "--every") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{database}: cannot read the store (database disk image is malformed)" in err
    assert "rebirth results check" in err and "Traceback" not in err
    assert rebirth("results", "check", "--store", tmp_path) == 1
    out, err = capsys.readouterr()
    assert "problem: " in out and "malformed" in out and "restore the store from a backup" in out
    assert "Traceback" not in err


# -- the import of a file store --------------------------------------------------------------------------------

def _file_store(root: Path, runs: dict[str, list[Profile]]) -> list[Path]:
    """An earlier rebirth's file store: FINGERPRINT/runs/NNNN.json per run, numbered per fingerprint."""
    paths = []
    for device, profiles in runs.items():
        for number, profile in enumerate(profiles, 1):
            fingerprint, _ = key_of(profile)
            path = root / fingerprint / "runs" / f"{number:04d}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            run = StoredRun.of(str(path), number, profile, device, "abc", f"2026-11-0{number}T10:00:00+00:00")
            path.write_text(json.dumps(run.to_dict(), indent=1))
            paths.append(path)
    return paths


def test_a_file_store_is_imported_on_first_use_with_every_run_file_accounted_for(tmp_path, capsys):
    root = tmp_path / "rebirth-results"
    paths = _file_store(root, {"p1": [device_run("p1", seed=seed) for seed in range(5)],
                               "p2": [device_run("p2", seed=seed) for seed in range(3)]})
    p1 = paths[0].parent
    baseline = root / "baselines" / "main" / p1.parent.name
    baseline.mkdir(parents=True)
    (baseline / "0004.json").write_bytes((p1 / "0004.json").read_bytes())
    (p1 / "0004.json").unlink()  # its run file is gone: the baseline's copy is the run
    (p1 / "0002.json").write_text('{"store_version": 1, "profi')  # truncated by a full disk
    (p1 / "0005.json.damaged").write_bytes(b"set aside by an earlier rebirth")
    (p1 / "0005.json").unlink()
    assert rebirth("results", "list", "--store", root, "--every") == 0
    out, err = capsys.readouterr()
    said = [line for line in err.splitlines() if line.strip()]
    assert len(said) == 2 and "0002.json: not a stored run" in said[0], err
    assert said[1] == (f"rebirth: imported the file store in {root} into {root / 'rebirth.sqlite'}: 8 run files: "
                       "6 runs; 1 set aside as damaged (named above); 1 set aside before; 1 baseline; the files stay "
                       "as they were, and rebirth reads the database from now on")
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["0001", "0003", "0004", "0001", "0002", "0003"]
    assert (p1 / "0002.json.damaged").is_file() and (p1 / "0001.json").is_file()  # the files stay
    assert set(store.load_baseline(root, "main")) == {key_of(device_run("p1", seed=3))}
    assert rebirth("results", "list", "--store", root) == 0
    assert capsys.readouterr().err == ""  # imported once
    assert store.save_run(device_run("p1", seed=9), root).number == 6  # after every number the file store took


def test_results_import_moves_a_file_store_into_another_store_and_keeps_both_numberings(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    _file_store(first, {"p1": [device_run("p1", seed=seed) for seed in range(3)]})
    _file_store(second, {"p1": [device_run("p1", seed=seed) for seed in range(10, 12)]})
    shared = tmp_path / "team.sqlite"
    assert rebirth("results", "import", first, "--store", shared) == 0
    assert capsys.readouterr().out.startswith(f"imported the file store in {first} into {shared}: 3 run files: 3 runs")
    assert rebirth("results", "import", second, "--store", shared) == 0
    out = capsys.readouterr().out
    assert "2 run files: 2 runs; 2 of them under a new number (theirs was taken)" in out
    assert [run.number for run in store.list_runs(shared)] == [1, 2, 3, 4, 5]
    assert rebirth("results", "import", second, "--store", shared) == 0
    assert "imported into" in capsys.readouterr().out and len(store.list_runs(shared)) == 5
    assert rebirth("results", "import", tmp_path / "nothing", "--store", shared) == 2


def test_regress_judges_one_model_of_the_store_when_asked(tmp_path, capsys):
    """A farm's nightly farm runs each profile one model: its CI judges that model's runs, not every model's."""
    def model_run(name, seed, model, factor=1.0):
        profile = device_run(name, seed, factor)
        return dataclasses.replace(profile, model=dataclasses.replace(profile.model, source=model))

    for name in ("p1", "p2"):
        for seed in (11, 12, 13, 1):
            for model in ("zoo:a", "zoo:b"):
                store.save_run(model_run(name, seed, model), tmp_path)
    assert rebirth("baseline", "save", "main", "--store", tmp_path) == 0
    for name in ("p1", "p2"):
        store.save_run(model_run(name, 2, "zoo:a"), tmp_path)
    store.save_run(model_run("p1", 3, "zoo:b", factor=1.3), tmp_path)
    capsys.readouterr()
    assert rebirth("regress", "--baseline", "main", "--store", tmp_path, "--model", "zoo:a", "--junit",
                   tmp_path / "a.xml") == 0
    assert (tmp_path / "a.xml").read_text().count("<testsuite ") == 2  # p1 and p2, zoo:a only
    assert rebirth("regress", "--baseline", "main", "--store", tmp_path, "--model", "zoo:b", "--device", "p1",
                   "--fail", "p50:10%") == 1
    assert rebirth("regress", "--ab", "a.pte", "b.pte", "--model", "zoo:a") == 2
    assert "--model chooses stored results" in capsys.readouterr().err


def test_reading_a_store_that_does_not_exist_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert rebirth("results", "list") == 0
    assert capsys.readouterr().out == f"no stored runs in {Path('rebirth-results') / 'rebirth.sqlite'}\n"
    assert rebirth("history", "--store", tmp_path / "nowhere") == 2
    assert "no stored runs in" in capsys.readouterr().err
    assert rebirth("regress", "--baseline", "main") == 2
    assert "no baseline 'main'" in capsys.readouterr().err
    assert rebirth("results", "check", "--store", tmp_path / "nowhere") == 0
    assert list(tmp_path.iterdir()) == []
    with store.open_store(tmp_path / "later") as opened:  # made by its first write
        assert opened.runs() == [] and not (tmp_path / "later").exists()
        opened.save_run(synthetic_profile(ops=10, samples=5))
        assert [run.number for run in opened.runs()] == [1]
    assert [run.number for run in store.list_runs(tmp_path / "later")] == [1]
