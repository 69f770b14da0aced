"""The ``local`` device: the runner as a child process on this host."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

from devices import runlog
from devices.base import DeviceDescription, DeviceState, ProgressCallback, RunRequest, RunResult
from devices.errors import runner_failure
from devices.hoststate import cpu_model, host_state

POLL_S = 0.01



def runner_sha256() -> str:
    """The host runner's identity: its source and the ExecuTorch runtime it loads."""
    import hashlib
    from importlib import metadata

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

    def describe(self) -> DeviceDescription:
        return DeviceDescription(self.name, self.kind, serial=platform.node(), product_model=cpu_model(),
                                 abi=platform.machine(), os=platform.platform(),
                                 runner=f"{self.python} -m devices.runner", build=platform.platform(),
                                 runner_sha256=runner_sha256())

    def state(self) -> DeviceState:
        return host_state()

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
            raise runner_failure(self.name, " ".join(command), process.returncode, output + "".join(errors))
        parsed = runlog.parse_log(output)
        return RunResult(etdump_path if request.etdump else None, output,
                         max(filter(None, (peak, parsed.peak_rss_bytes)), default=None),
                         parsed.baseline_rss_bytes, before, self.state(), threads=request.threads,
                         cpu_affinity=",".join(map(str, request.cpu_affinity)) if request.cpu_affinity else None)


def _runner_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    project_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [project_root, env.get("PYTHONPATH")]))
    return env


def _pin(pid: int, cpus: tuple[int, ...]) -> None:
    try:
        os.sched_setaffinity(pid, set(cpus))
    except (OSError, AttributeError):
        pass


def _reader(stream, sink: list[str], progress: Optional[ProgressCallback], request: RunRequest) -> threading.Thread:
    def pump():
        for line in stream:
            sink.append(line)
            done = runlog.progress_of(line) if progress else None
            if done and done[0] <= request.warmup:
                progress("warmup", done[0], request.warmup)
            elif done:
                progress("run", done[0] - request.warmup, done[1] - request.warmup)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def _watch_memory(process: subprocess.Popen) -> Optional[int]:
    """Poll VmHWM of the child until it exits; the highest value seen, in bytes."""
    status = Path(f"/proc/{process.pid}/status")
    peak = None
    while process.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak or 0, int(line.split()[1]) * 1024)
        except (OSError, ValueError):
            pass
        time.sleep(POLL_S)
    return peak
