"""The sleeping ``executor_runner`` of an emulated phone: replays a recorded run in real time.

    python devices/emulator/sleeper.py --recordings DIR [--execution_ms MS] [--runner CMD] --model_path m.pte \
        --num_executions 23 --etdump_path m.etdp [--cpu_threads 2]

A recording is one real run of rebirth's runner (``--runner``, default ``python -m rebirth.devices.runner``) for a
model and a number of
executions: its log and its ETDump. The first run of a combination makes it;
every run then prints the recorded log, sleeping before each execution line (``--execution_ms``,
else the recorded time), and writes the recorded ETDump. The host reads a real ETDump, so the
profile's op times and latencies are the recorded run's; only the wall time is simulated. Many
phones can sleep at once where they could not all compute on the host's cores.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from rebirth.devices import runlog
from rebirth.devices.runner import parse_args as parse_runner_args


def parse_args(argv: Optional[list[str]] = None) -> tuple[argparse.Namespace, list[str]]:
    """The sleeper's own flags, and the runner's flags as they came."""
    parser = argparse.ArgumentParser(prog="sleeper.py", description=__doc__.split("\n")[0])
    parser.add_argument("--recordings", type=Path, required=True)
    parser.add_argument("--runner", default=f"{shlex.quote(sys.executable)} -m rebirth.devices.runner",
                        help="the command that makes a recording (rebirth's native runner on the emulated phone)")
    parser.add_argument("--execution_ms", type=float, default=None)
    return parser.parse_known_args(argv)


def recording_stem(runner: argparse.Namespace) -> str:
    """What a recording is made of: the model's bytes and the number of executions (the thread count
    of the run that recorded it stays in it)."""
    digest = hashlib.sha256(Path(runner.model_path).read_bytes()).hexdigest()[:16]
    return f"{digest}-x{runner.warmup + runner.num_executions}"


def record(command: str, runner_argv: list[str], runner: argparse.Namespace, log_path: Path) -> int:
    """Run rebirth's runner for real once and keep its log and ETDump beside ``log_path``; its exit code."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".recording-", dir=log_path.parent) as folder:
        etdump = Path(folder) / "model.etdp"
        traced = [arg for arg in runner_argv if arg != "--no_etdump"]
        argv = [*traced, "--etdump_path", str(etdump)]  # the last one wins
        done = subprocess.run([*shlex.split(command), *argv], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        if done.returncode != 0:
            sys.stdout.write(done.stdout)
            return done.returncode
        (Path(folder) / "run.log").write_text(done.stdout)
        # The ETDump first: a log without its ETDump beside it is never taken for a recording.
        os.replace(etdump, log_path.with_suffix(".etdp"))
        os.replace(Path(folder) / "run.log", log_path)
    return 0


class Body:
    """What the phone's physics (``devices.emulator.physics``) needs of a sleeping runner: its sleep stretched
    by the clock the phone runs at now, and the time it slept told as busy cores."""

    def __init__(self, root: Optional[str], threads: int):
        self.threads = max(1, threads)
        self.busy_ms = 0.0
        self.busy_file: Optional[Path] = None
        self.clock: Optional[tuple[Path, float]] = None
        if not root or not (Path(root) / ".physics").is_dir():
            return
        self.busy_file = Path(root) / ".physics/busy" / str(os.getpid())
        cores = sorted(Path(root, "sys/devices/system/cpu").glob("cpu[0-9]*"), key=lambda c: int(c.name[3:]))
        if cores:  # the last core is a big one on the profiles the emulator has
            cpufreq = cores[-1] / "cpufreq"
            self.clock = (cpufreq / "scaling_cur_freq", float((cpufreq / "cpuinfo_max_freq").read_text()))

    def stretch(self) -> float:
        """How much longer an execution takes at the clock now than at the core's maximum."""
        if self.clock is None:
            return 1.0
        try:
            return self.clock[1] / max(1.0, float(self.clock[0].read_text()))
        except (OSError, ValueError):
            return 1.0

    def slept(self, milliseconds: float) -> None:
        if self.busy_file is None:
            return
        self.busy_ms += milliseconds * self.threads
        temporary = self.busy_file.with_suffix(".new")
        temporary.write_text(f"{self.busy_ms:.3f}")
        os.replace(temporary, self.busy_file)


def replay(log: str, execution_ms: Optional[float], body: Optional[Body] = None) -> None:
    """Print the recorded log, sleeping before each execution line; the total is recomputed."""
    total_ms = 0.0
    for line in log.splitlines():
        took = runlog.iteration_ms(line)
        if took is not None:
            planned = execution_ms if execution_ms is not None else took
            took = _sleep_ms(planned * (body.stretch() if body else 1.0))
            if body:
                body.slept(took)
            kind, count = line.split(" ", 2)[:2]
            total_ms += took if kind == "Execution" else 0.0
            line = f"{kind} {count} in {took:f} ms."
        elif line.startswith("Model executed successfully"):
            line = f"{line.split(' in ')[0]} in {total_ms:f} ms."
        print(line, flush=True)


def _sleep_ms(milliseconds: float) -> float:
    start = time.perf_counter()
    time.sleep(milliseconds / 1000)
    return (time.perf_counter() - start) * 1000


def main(argv: Optional[list[str]] = None) -> int:
    args, runner_argv = parse_args(argv)
    runner = parse_runner_args(runner_argv)
    log_path = args.recordings / f"{recording_stem(runner)}.log"
    if not log_path.is_file():
        code = record(args.runner, runner_argv, runner, log_path)
        if code != 0:
            return code
    threads = runner.cpu_threads if runner.cpu_threads > 0 else 1
    replay(log_path.read_text(), args.execution_ms, Body(os.environ.get("REBIRTH_DEVICE_ROOT"), threads))
    if not runner.no_etdump:
        shutil.copyfile(log_path.with_suffix(".etdp"), runner.etdump_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
