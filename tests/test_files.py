"""Atomic files get the mode ``open()`` gives, and writing them never touches the process umask (which
every thread shares: farm workers write files at the same time)."""

import contextlib
import os
import stat
import threading
import time

import pytest

from rebirth.contract.files import write_temp, write_text_atomic


@contextlib.contextmanager
def umask(value: int):
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o027])
def test_an_atomic_file_gets_0666_less_the_umask(tmp_path, mask):
    with umask(mask):
        write_text_atomic(tmp_path / "report.html", "<p>x</p>")
        assert mode(tmp_path / "report.html") == 0o666 & ~mask
        assert os.listdir(tmp_path) == ["report.html"]


def test_the_umask_is_never_widened_for_other_threads(tmp_path):
    """Writers call write_temp in a loop while another thread creates files as open() does: every file the
    other thread made keeps 0600 under umask 077 (reading the umask with os.umask(0) once let some get 0666)."""
    made, written = tmp_path / "made", tmp_path / "written"
    made.mkdir()
    written.mkdir()
    stop = threading.Event()
    wrong: list[tuple[str, int]] = []

    def write() -> None:
        while not stop.is_set():
            path = write_temp(written, "x")
            if mode(path) != 0o600:
                wrong.append((path.name, mode(path)))
            path.unlink()

    def create() -> int:
        count = 0
        while not stop.is_set():
            path = made / f"f{count}"
            with open(path, "w"):
                pass
            if mode(path) != 0o600:
                wrong.append((path.name, mode(path)))
            path.unlink()
            count += 1
        return count

    with umask(0o077):
        writers = [threading.Thread(target=write) for _ in range(6)]
        for thread in writers:
            thread.start()
        counted: list[int] = []
        creator = threading.Thread(target=lambda: counted.append(create()))
        creator.start()
        time.sleep(2.0)
        stop.set()
        for thread in [*writers, creator]:
            thread.join(30)
    assert counted and counted[0] > 100, counted
    assert wrong == []
