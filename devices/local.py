"""The ``local`` device: the runner as a child process on this host; rebirth's native runner, or its
Python runner where no C++ compiler can build the native one."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Optional

from rebirth.contract import notes
from rebirth.contract.device import (
    NATIVE,
    PYTHON,
    CheckItem,
    Cooling,
    DeviceInfo,
    DeviceReport,
    DeviceState,
    Sample,
    Zone,
)
from rebirth.contract.errors import MissingToolError, RunnerBuildError
from rebirth.contract.files import sha256_file
from rebirth.contract.notes import PYTHON_RUNNER, Note
from rebirth.devices import energy, hoststate, pagecache, runlog, thermal
from rebirth.devices.base import ProbeModel, ProgressCallback, RunDefaults, RunRequest, RunResult
from rebirth.devices.hoststate import cpu_model, host_state
from rebirth.devices.inventory import LocalConfig
from rebirth.devices.phonestate import big_core_mask, mask_cores
from rebirth.devices.procstatus import process_cpu_ticks, status_kib

POLL_S = 0.01
SAMPLE_S = 0.1
"""A sample of the host (memory, temperature, clock, battery) every this many seconds of a run."""
IDLE_SAMPLES, IDLE_READINGS = 50, 10


def python_runner_sha256() -> str:
    """The Python runner's identity: its source and the ExecuTorch runtime it loads."""
    from rebirth.devices import runner

    digest = hashlib.sha256(Path(runner.__file__).read_bytes())
    digest.update(metadata.version("executorch").encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class HostRunner:
    """How the host runs a .pte: the command before the runner's flags, and what it is."""

    command: tuple[str, ...]
    kind: str
    sha256: str
    note: Optional[Note] = None
    """Said once with every profile it makes (why the fallback runner is used)."""

    @property
    def shown(self) -> str:
        return " ".join(self.command)


def host_runner(python: str = sys.executable, prefer: str = NATIVE) -> HostRunner:
    """rebirth's native runner (built on first use), else its Python runner with a note saying why.

    Args:
        prefer: ``python`` to use the Python runner (to compare the two).
    """
    if prefer == NATIVE:
        from rebirth.devices.native import build

        try:
            path = build.host_runner()
            return HostRunner((str(path),), NATIVE, sha256_file(path))
        except (MissingToolError, RunnerBuildError) as error:
            note = Note(PYTHON_RUNNER, f"{error}; rebirth's Python runner ran instead, whose peak RSS includes about "
                        "220 MB of Python and torch")
            return HostRunner((python, "-m", "rebirth.devices.runner"), PYTHON, python_runner_sha256(), note)
    return HostRunner((python, "-m", "rebirth.devices.runner"), PYTHON, python_runner_sha256())


class LocalDevice:
    """Runs rebirth's runner on the host and watches its memory."""

    kind = "local"

    def __init__(self, name: str = "local", python: str = sys.executable, runner: str = NATIVE,
                 config: Optional[LocalConfig] = None):
        """``runner``: ``native`` (the default; the Python runner where it cannot be built) or ``python``.
        ``config``: devices.toml's ``[local]`` table (None: no settings)."""
        self.name = name
        self.config = config or LocalConfig()
        self.python = python
        self.prefer = runner
        self._runner: Optional[HostRunner] = None
        self._running: Optional[subprocess.Popen] = None

    def runner(self) -> HostRunner:
        """The runner this device uses, resolved (and built) once."""
        if self._runner is None:
            self._runner = host_runner(self.python, self.prefer)
        return self._runner

    def __enter__(self) -> LocalDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def defaults(self) -> RunDefaults:
        config = self.config
        return RunDefaults(config.warmup, config.iterations, config.threads, config.cooldown_s,
                           mask_cores(config.cpu_mask) if config.cpu_mask else None, config.backend)

    def close(self) -> None:
        """Nothing to close: each run is its own process."""

    def abort(self) -> None:
        """Kill the runner of the run in progress, if any: the run ends with a RunnerError."""
        process = self._running
        if process is not None and process.poll() is None:
            process.kill()

    def describe(self) -> DeviceInfo:
        runner = self.runner()
        return DeviceInfo(self.name, self.kind, serial=platform.node(), product_model=cpu_model(),
                          abi=platform.machine(), os=platform.platform(), runner=runner.shown,
                          build=platform.platform(), runner_sha256=runner.sha256, runner_kind=runner.kind)

    def state(self) -> DeviceState:
        return host_state()

    def report(self) -> DeviceReport:
        state = host_state()
        zones = (Zone(0, "hottest", state.temperature_c),) if state.temperature_c is not None else ()
        return DeviceReport(self.describe(), {}, state.cores, zones, None, big_core_mask(state.cores))

    def check(self, probe: Optional[ProbeModel] = None) -> list[CheckItem]:
        """The host is always there; its runner is rebirth's own (the native one unless it cannot be built)."""
        runner = self.runner()
        detail = f"{runner.kind}: {runner.shown}" + (f" ({runner.note})" if runner.note else "")
        return [CheckItem("reachable", True, "this host"), CheckItem("runner", runner.kind == NATIVE, detail)]

    def command(self, request: RunRequest, etdump_path: Path) -> list[str]:
        command = [*self.runner().command, "--model_path", str(request.model_path),
                   "--num_executions", str(request.iterations), "--etdump_path", str(etdump_path),
                   "--warmup", str(request.warmup)]
        threads = request.threads or self.config.threads
        if threads:
            command += ["--cpu_threads", str(threads)]
        if not request.etdump:
            command.append("--no_etdump")
        if request.paired_model_path is not None:
            command += ["--paired_model_path", str(request.paired_model_path)]
        return command

    def pairs_in_process(self) -> bool:
        return self.runner().kind == NATIVE

    def run(self, request: RunRequest, workdir: Path, progress: Optional[ProgressCallback] = None) -> RunResult:
        """Run the runner once; raise ``ModelRejectedError`` when the runtime refuses the model."""
        if request.cooldown_s:
            time.sleep(request.cooldown_s)
        cooling = self._cool(request) if request.gate else None
        battery = hoststate.battery_folder()
        metered = battery is not None and energy.charging_status(hoststate.read_text(battery / "status")) is False
        idle = _idle(battery) if metered and battery else []
        flushed = _drop_page_cache(request) if request.drop_page_cache else None
        before = self.state()
        harness_start = _own_cpu_ticks()
        etdump_path = workdir / "model.etdp"
        command = self.command(request, etdump_path)
        process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, env=_runner_env())
        self._running = process
        affinity = request.cpu_affinity or self.defaults.cpu_affinity
        if affinity:
            _pin(process.pid, affinity)
        lines: list[str] = []
        errors: list[str] = []
        readers = [_reader(process.stdout, lines, progress, request), _reader(process.stderr, errors, None, request)]
        samples: list[Sample] = []
        try:
            peak, cpu = _watch(process, samples, battery)
        finally:
            self._running = None
        for reader in readers:
            reader.join()
        output = "".join(lines)
        if process.returncode != 0:
            raise runlog.runner_failure(self.name, " ".join(command), process.returncode, output + "".join(errors))
        log = runlog.parse_log(output)
        # rebirth's own time (the watch loop, the readers, any other thread) is the measurement, not other
        # work: with the runner's it is what the device would have been doing anyway.
        # The runner has been reaped, so its whole time is in the children's share; the last poll missed its end.
        ours = max(cpu or 0, _own_cpu_ticks() - harness_start)
        notes = tuple(note for note in (self.runner().note, flushed) if note is not None)
        return RunResult(etdump_path if request.etdump else None, log,
                         max(filter(None, (peak, log.peak_rss_bytes)), default=None), before, self.state(),
                         threads=request.threads or self.config.threads,
                         cpu_affinity=",".join(map(str, affinity)) if affinity else None,
                         notes=notes, runner_cpu_ticks=ours if cpu is not None else None,
                         cooling=cooling, samples=(*idle, *samples),
                         energy_gauge=f"{battery}/current_now" if battery else None,
                         page_cache_flushed=None if not request.drop_page_cache else flushed is None)

    def _cool(self, request: RunRequest) -> Cooling:
        """The host's thermal gate: as a phone's, where the host has thermal zones (most servers show none)."""
        limit, source = thermal.limit_for(self.name + "@" + platform.node(), request.cool_below_c, "--cool-below")
        cooling = thermal.cool(hoststate.temperature_c, limit, source, thermal.wait_bound(request))
        if cooling.limit_c is None and cooling.start_c is None:
            return Cooling(None, "this host shows no thermal zone")
        thermal.remember(self.name + "@" + platform.node(), cooling.end_c)
        return cooling


def _drop_page_cache(request: RunRequest) -> Optional[Note]:
    """Drop the model (and the paired one) from the host's page cache; a note when some of it stayed."""
    for path in filter(None, (request.model_path, request.paired_model_path)):
        why = pagecache.drop(path)
        if why:
            return Note(notes.NOT_FLUSHED, f"page cache not flushed: {why}")
    return None


def _own_cpu_ticks() -> int:
    """CPU ticks used by rebirth's process and its reaped children (the runner once it has exited)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return round(seconds * os.sysconf("SC_CLK_TCK"))


def _runner_env() -> dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1")


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


def _watch(process: subprocess.Popen, samples: list[Sample], battery: Optional[Path] = None
           ) -> tuple[Optional[int], Optional[int]]:
    """Poll the child until it exits: the highest VmHWM seen (bytes) and the last CPU time read (ticks); a
    sample of the host every ``SAMPLE_S`` goes into ``samples``."""
    peak, cpu = None, None
    start = time.monotonic()
    next_sample = start
    while process.poll() is None:
        kib = status_kib("VmHWM", process.pid)
        if kib is not None:
            peak = max(peak or 0, kib * 1024)
        cpu = process_cpu_ticks(process.pid) or cpu
        if time.monotonic() >= next_sample:
            samples.append(_sample(process.pid, battery, time.monotonic() - start))
            next_sample += SAMPLE_S
        time.sleep(POLL_S)
    return peak, cpu


def _idle(battery: Path) -> list[Sample]:
    """The battery's idle draw before a run: samples every ``SAMPLE_S`` until ``IDLE_READINGS`` new values or
    ``IDLE_SAMPLES`` looks, timed before the run (negative)."""
    taken: list[Sample] = []
    while len(taken) < IDLE_SAMPLES and len(energy.changes([s.current_ua or 0.0 for s in taken])) < IDLE_READINGS:
        taken.append(_sample(None, battery, 0.0, wait=True))
    return [dataclasses.replace(sample, t_s=round(-SAMPLE_S * (len(taken) - index), 3))
            for index, sample in enumerate(taken)]


def _sample(pid: Optional[int], battery: Optional[Path], t_s: float, wait: bool = False) -> Sample:
    """The host now: the runner's VmRSS, the hottest zone, the fastest clock, the battery where there is one."""
    if wait:
        time.sleep(SAMPLE_S)
    rss = status_kib("VmRSS", pid) if pid else None
    current = voltage = charging = None
    if battery is not None:
        charging = energy.charging_status(hoststate.read_text(battery / "status"))
        current = energy.current_ua(hoststate.read_text(battery / "current_now"), charging)
        voltage = energy.voltage_uv(hoststate.read_text(battery / "voltage_now"))
    return Sample(round(t_s, 3), rss * 1024 if rss is not None else None, hoststate.temperature_c(),
                  hoststate.max_cur_freq_khz(), current, voltage, charging)
