"""The ``local`` device: the runner as a child process on this host."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import IO, Optional

from contract.device import CheckItem, DeviceInfo, DeviceReport, DeviceState, Zone
from devices import runlog
from devices.base import ProbeModel, ProgressCallback, RunDefaults, RunRequest, RunResult
from devices.hoststate import cpu_model, host_state
from devices.phonestate import big_core_mask
from devices.procstatus import status_kib

POLL_S = 0.01
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def runner_sha256() -> str:
    """The host runner's identity: its source and the ExecuTorch runtime it loads."""
    from devices import runner

    digest = hashlib.sha256(Path(runner.__file__).read_bytes())
    digest.update(metadata.version("executorch").encode())
    return digest.hexdigest()


class LocalDevice:
    """Runs ``python -m devices.runner`` on the host and watches its memory."""

    kind = "local"

    def __init__(self, name: str = "local", python: str = sys.executable):
        self.name = name
        self.python = python

    def __enter__(self) -> LocalDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def defaults(self) -> RunDefaults:
        return RunDefaults()

    def close(self) -> None:
        """Nothing to close: each run is its own process."""

    def describe(self) -> DeviceInfo:
        return DeviceInfo(self.name, self.kind, serial=platform.node(), product_model=cpu_model(),
                          abi=platform.machine(), os=platform.platform(), runner=f"{self.python} -m devices.runner",
                          build=platform.platform(), runner_sha256=runner_sha256())

    def state(self) -> DeviceState:
        return host_state()

    def report(self) -> DeviceReport:
        state = host_state()
        zones = (Zone(0, "hottest", state.temperature_c),) if state.temperature_c is not None else ()
        return DeviceReport(self.describe(), {}, state.cores, zones, None, big_core_mask(state.cores))

    def check(self, probe: Optional[ProbeModel] = None) -> list[CheckItem]:
        """The host is always there; its runner is rebirth's own."""
        return [CheckItem("reachable", True, "this host"), CheckItem("runner", True, self.describe().runner or "")]

    def command(self, request: RunRequest, etdump_path: Path) -> list[str]:
        command = [self.python, "-m", "devices.runner", "--model_path", str(request.model_path),
                   "--num_executions", str(request.iterations), "--etdump_path", str(etdump_path),
                   "--warmup", str(request.warmup)]
        if request.threads:
            command += ["--cpu_threads", str(request.threads)]
        if not request.etdump:
            command.append("--no_etdump")
        return command

    def run(self, request: RunRequest, workdir: Path, progress: Optional[ProgressCallback] = None) -> RunResult:
        """Run the runner once; raise ``ModelRejectedError`` when the runtime refuses the model."""
        if request.cooldown_s:
            time.sleep(request.cooldown_s)
        before = self.state()
        etdump_path = workdir / "model.etdp"
        command = self.command(request, etdump_path)
        process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, env=_runner_env())
        if request.cpu_affinity:
            _pin(process.pid, request.cpu_affinity)
        lines: list[str] = []
        errors: list[str] = []
        readers = [_reader(process.stdout, lines, progress, request), _reader(process.stderr, errors, None, request)]
        peak = _watch_memory(process)
        for reader in readers:
            reader.join()
        output = "".join(lines)
        if process.returncode != 0:
            raise runlog.runner_failure(self.name, " ".join(command), process.returncode, output + "".join(errors))
        log = runlog.parse_log(output)
        return RunResult(etdump_path if request.etdump else None, log,
                         max(filter(None, (peak, log.peak_rss_bytes)), default=None), before, self.state(),
                         threads=request.threads,
                         cpu_affinity=",".join(map(str, request.cpu_affinity)) if request.cpu_affinity else None)


def _runner_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


def _pin(pid: int, cpus: tuple[int, ...]) -> None:
    try:
        os.sched_setaffinity(pid, set(cpus))
    except (OSError, AttributeError):
        pass


def _reader(stream: Optional[IO[str]], sink: list[str], progress: Optional[ProgressCallback],
            request: RunRequest) -> threading.Thread:
    def pump() -> None:
        for line in stream or ():
            sink.append(line)
            runlog.report_progress(line, request.warmup, request.iterations, progress)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def _watch_memory(process: subprocess.Popen) -> Optional[int]:
    """Poll VmHWM of the child until it exits; the highest value seen, in bytes."""
    peak = None
    while process.poll() is None:
        kib = status_kib("VmHWM", process.pid)
        if kib is not None:
            peak = max(peak or 0, kib * 1024)
        time.sleep(POLL_S)
    return peak
