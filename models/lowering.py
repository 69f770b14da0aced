"""Lowering in a second process while this one goes on.

``to_edge_transform_and_lower`` is Python on one core. A slimming lowers its int8 program (full GoogLeNet: 24 s)
and, besides it, the float program and the programs each technique left (10, 7 and 7 s), one after another,
while the machine's other cores wait. ``Lowering`` hands the float ones to a worker process (``python -m
rebirth.models.lowering BACKEND``), as .pt2 files, one job per line on its standard input; the worker lowers
each in turn and writes its .pte and .etrecord (``write_lowered``), answering one line per job. A job the worker
could not do (its process died, or lowering raised) is answered None, and the caller lowers that program itself,
so that an error reaches the user as it would without the worker. The worker's files live in a scratch folder
that ``close`` removes (or the collection of the ``Lowering``, or the process's exit, if nothing closed it).
A worker still lowering 5 s after it is told to stop is killed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Optional

DONE, FAILED = "done", "failed"


class Lowering:
    """A worker process lowering exported programs for ``backend``, each job under a key (the model's ``id``: the
    model is held until ``close``, so its id names it)."""

    def __init__(self, backend: str):
        self.backend = backend
        self.folder = Path(tempfile.mkdtemp(prefix="rebirth-lowering-"))
        self._process: Optional[subprocess.Popen] = None
        self._jobs: dict[int, tuple[Any, Path]] = {}
        self._answers: dict[Path, Optional[str]] = {}
        """Each job's answer once read: None when done, else why not."""
        self._later: list[tuple[int, Callable[[], Any], Any]] = []
        self._worker: list[subprocess.Popen] = []
        """The worker, once started, where ``close`` (or the collection of this object, or the exit) finds it."""
        self._closed = weakref.finalize(self, _stop, self._worker, self.folder)

    def later(self, key: int, exported: Callable[[], Any], holding: Any = None) -> None:
        """Submit ``exported()`` under ``key`` right after the next ``submit``'s job, if there is one: the
        worker starts when this process has a program to lower itself, so that the two share no core while this
        one computes on all of them (calibrating int8 beside the worker took twice as long)."""
        self._later.append((key, exported, holding))

    def submit(self, key: int, exported: Any, holding: Any = None) -> None:
        """Lower ``exported`` (an ``ExportedProgram``) in the worker, under ``key``; ``holding`` is kept alive
        with the job (the model ``key`` is the id of). A key submitted already is left as it is."""
        import torch

        from rebirth.contract.quiet import quiet

        if key in self._jobs:
            return
        number = len(self._jobs)
        pt2, pte = self.folder / f"{number}.pt2", self.folder / f"{number}.pte"
        self._jobs[key] = (holding, pte)
        try:
            with quiet():
                torch.export.save(exported, str(pt2))
            process = self._started()
            assert process.stdin is not None
            process.stdin.write(f"{pt2}\t{pte}\n")
            process.stdin.flush()
        except OSError:  # the worker could not start, or is gone: the job is answered as failed when asked
            self._answers[pte] = "the lowering process has ended"
        except Exception as error:  # a program .pt2 cannot hold: the caller lowers it itself
            self._answers[pte] = f"cannot be saved for the worker ({type(error).__name__})"
        waiting, self._later = self._later, []
        for later, exported_later, held in waiting:
            try:
                program = exported_later()
            except Exception:  # not exported here either: written() says None, and the caller lowers it
                continue
            self.submit(later, program, held)

    def written(self, key: int) -> Optional[Path]:
        """The .pte (its .etrecord beside it) the worker wrote for ``key``, waiting for it; None when the key was
        not submitted or the worker could not do it."""
        job = self._jobs.get(key)
        if job is None:
            return None
        pte = job[1]
        while pte not in self._answers:
            if not self._read_answer():
                self._answers[pte] = "the lowering process has ended"
        return pte if self._answers[pte] is None else None

    def finish(self) -> None:
        """Wait until the worker has answered every job: before timing anything on this machine."""
        for key in list(self._jobs):
            self.written(key)

    def close(self) -> None:
        """Stop the worker and remove its files."""
        self._process = None
        self._closed()

    def _started(self) -> subprocess.Popen:
        if self._process is None:
            paths = [path for path in sys.path if path]
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
            with open(self.folder / "worker.log", "wb") as log:
                self._process = subprocess.Popen([sys.executable, "-m", "rebirth.models.lowering", self.backend],
                                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                                 text=True, env=env, cwd=self.folder)
            self._worker.append(self._process)
        return self._process

    def _read_answer(self) -> bool:
        """Read one answer line; False when the worker has ended."""
        process = self._process
        if process is None or process.stdout is None:
            return False
        line = process.stdout.readline()
        if not line:
            return False
        kind, _, rest = line.rstrip("\n").partition("\t")
        where, _, why = rest.partition("\t")
        self._answers[Path(where)] = None if kind == DONE else (why or "lowering failed")
        return True


def _stop(worker: list[subprocess.Popen], folder: Path) -> None:
    """End the worker (its jobs' line closed, killed if it does not end within 5 s) and remove ``folder``."""
    while worker:
        process = worker.pop()
        if process.stdin is not None:
            try:
                process.stdin.close()
            except OSError:
                pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    shutil.rmtree(folder, ignore_errors=True)


def copy_written(pte: Path, out_pte: Path, source: str, backend: str, exported_program: Any = None):
    """``pte`` and its .etrecord (written by the worker) as ``out_pte`` and its .etrecord, with ``exported_program``
    as its .pt2 when given; every file appears whole or not at all (``write_staged``).

    Raises:
        OSError: the folder cannot be written.
    """
    import torch

    from rebirth.contract.quiet import quiet
    from rebirth.models.export import Backend, Exported, write_staged

    def write(staged: dict[str, Path]) -> None:
        shutil.copyfile(pte, staged["pte"])
        shutil.copyfile(pte.with_suffix(".etrecord"), staged["etrecord"])
        if exported_program is not None:
            with quiet():
                torch.export.save(exported_program, str(staged["pt2"]))

    return Exported(out_pte, write_staged(out_pte, write)["etrecord"], Backend(backend).value, source)


def write_via(lowering: Optional[Lowering], key: int, lowered: Any, exported: Any, backend: str, out_pte: Path,
              source: str, pt2: Any = None) -> Any:
    """Write the program under ``key`` as ``out_pte`` (with ``pt2`` as its .pt2 when given): the worker's files where
    ``lowering`` has them, else ``lowered``, lowered here from ``exported`` when None. The program lowered here, or
    None where the worker's files were taken.

    Raises:
        OSError: the folder cannot be written.
    """
    from rebirth.models.export import lower, write_lowered

    worker = lowering.written(key) if lowering is not None and lowered is None else None
    if worker is not None:
        copy_written(worker, out_pte, source, backend, pt2)
        return None
    if lowered is None:
        lowered = lower(exported, backend)
    write_lowered(lowered, backend, out_pte, source, pt2)
    return lowered


def _serve(backend: str, jobs: IO[str], answers: IO[str]) -> None:
    """The worker: lower each job ``PT2<TAB>PTE`` read from ``jobs`` and answer ``done<TAB>PTE`` or
    ``failed<TAB>PTE<TAB>why`` on ``answers``, until ``jobs`` ends."""
    import torch

    torch.set_num_threads(1)  # the slimming goes on beside it
    from rebirth.contract.quiet import quiet
    from rebirth.models.export import import_heavy, lower, write_lowered

    import_heavy()
    for line in jobs:
        pt2, _, pte = line.rstrip("\n").partition("\t")
        try:
            with quiet():
                program = lower(torch.export.load(pt2), backend)
            write_lowered(program, backend, Path(pte), "lowered by the worker")
        except Exception as error:  # the caller lowers it itself, and meets the error there
            first = str(error).splitlines()[0] if str(error) else ""
            answers.write(f"{FAILED}\t{pte}\t{type(error).__name__}: {first}\n")
        else:
            answers.write(f"{DONE}\t{pte}\n")
        answers.flush()


if __name__ == "__main__":
    # the answers keep the standard output's pipe; whatever else writes to it, in Python or in C, goes to the log
    _answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _serve(sys.argv[1], sys.stdin, _answers)
