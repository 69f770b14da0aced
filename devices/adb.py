"""A phone over ADB: push the runner and the model, run pinned to the big cores, watch memory,
pull the ETDump back.

Every ADB operation goes through ``AdbDevice.call``, the one choke point that turns transport
failures into a ``DeviceError`` naming the device, the step, the command, the exit code and
the output. Every path and argument that reaches the phone's shell is quoted with
``shlex.quote``; everything a run writes stays in its own run folder, removed afterwards.

Layout on the phone, under the work folder (default ``/data/local/tmp/rebirth``)::

    bin/executor_runner        the runner, when the inventory names one to push
    models/NAME.pte            models, pushed again only when their sha256 changes
    runs/STAMP-XXXX/           one folder per run: the ETDump; removed after the pull
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets
import shlex
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from rebirth.contract import notes
from rebirth.contract.cache import cache_root
from rebirth.contract.device import (
    EMULATED,
    EXTERNAL,
    NATIVE,
    Battery,
    CheckItem,
    Cooling,
    DeviceInfo,
    DeviceReport,
    DeviceState,
    Sample,
)
from rebirth.contract.errors import (
    ConfigError,
    DeviceError,
    InputError,
    RunnerError,
    UnauthorizedError,
    UnreachableError,
)
from rebirth.contract.files import sha256_file, write_json_atomic
from rebirth.contract.notes import Note
from rebirth.devices import energy, phonestate, runlog, thermal
from rebirth.devices.base import ProbeModel, ProgressCallback, RunDefaults, RunRequest, RunResult
from rebirth.devices.inventory import DeviceConfig
from rebirth.devices.native.build import LAUNCHER as BUNDLE_LAUNCHER
from rebirth.devices.native.build import Bundle
from rebirth.devices.transport import NotAuthorizedError, ShellResult, Transport, TransportError

SHORT_S = 30.0
"""Timeout of a small command (a getprop, a mkdir)."""
MIN_BYTES_PER_S = 1 << 20
"""The slowest link we plan for (wireless ADB); push and pull timeouts scale with the file size."""
POLL_S = 0.1
SLOW_POLL_S = 0.5
FAST_POLLS = 10
"""The runner's memory is polled every ``POLL_S`` for its first ``FAST_POLLS`` looks, then every ``SLOW_POLL_S``."""
IDLE_POLLS, IDLE_READINGS = 50, 10
"""Looks at the battery's gauge before a metered run, every ``POLL_S``, until it gave ``IDLE_READINGS`` new
values or ``IDLE_POLLS`` looks (5 s) went by: the idle draw, from a gauge refreshing ten times a second or twice."""
STALE_RUN_MIN = 60
_DROP = "sync; echo 3 > /proc/sys/vm/drop_caches"
DROP_CACHES = (f"if [ \"$(id -u)\" = 0 ]; then sh -c {shlex.quote(_DROP)} && echo __flushed; "
               "elif command -v su >/dev/null 2>&1 && "
               f"{{ su 0 sh -c {shlex.quote(_DROP)} || su -c {shlex.quote(_DROP)}; }} </dev/null >/dev/null 2>&1; "
               "then echo __flushed; else echo __not_root; fi")
"""Drop the phone's page cache: directly as root (``adb root``), else through ``su`` (AOSP's ``su 0 CMD``, or
Magisk's ``su -c CMD``), never waiting for input; ``__not_root`` where neither works."""


def q(value: object) -> str:
    return shlex.quote(str(value))


EMULATED_NOTE = Note(notes.EMULATED, "the phone's CPU is emulated (qemu): its timings and memory say nothing about a "
                     "real phone's; use it to test the arm64 path, not to measure")


def _runner_usage_cache(identity: Optional[str]) -> Optional[Path]:
    """Where what a runner's ``--help`` told is kept, by the runner's sha256; None for a runner of unknown bytes."""
    if not identity or not re.fullmatch(r"[0-9a-f]{64}", identity):
        return None
    return cache_root() / "runners" / "usage" / f"{identity}.json"


@dataclass(frozen=True)
class PhoneRunner:
    """The runner on a phone: the command that starts it, where it is, what it is, and its identity."""

    argv: tuple[str, ...]
    """``("sh", LAUNCHER)`` for rebirth's bundle, ``(PATH,)`` for a runner binary."""
    path: str
    kind: str
    """``native`` (rebirth's) or ``external`` (the inventory's or the phone's)."""
    sha256: Optional[str]
    pairs: bool = False
    """It runs two programs alternately in one process (``--paired_model_path``, rebirth's runner)."""


@dataclass
class _Watch:
    """What the shell around a run reports: the runner's pid, its highest VmHWM in bytes, its CPU time, and
    the samples of the phone (``__s`` lines, on its uptime) with the uptime at the runner's start."""

    pid: Optional[str] = None
    peak: Optional[int] = None
    cpu_ticks: Optional[int] = None
    unit: Optional[str] = None
    """The gauge's unit, where the inventory says."""
    t0: Optional[float] = None
    raw: list[tuple[float, Sample, Optional[str]]] = field(default_factory=list)
    """Each look: its uptime, its sample without the current, and the gauge's current as it read."""

    def start(self, line: str) -> None:
        self.t0 = _float(line.split()[1]) if len(line.split()) > 1 else None

    def sample(self, line: str) -> None:
        """``__s UPTIME RSS_KIB TEMP FREQ CURRENT VOLTAGE STATUS...``; ``-`` where unread."""
        parts = line.split(maxsplit=7)
        uptime = _float(parts[1]) if len(parts) == 8 else None
        if uptime is None:
            return
        rss, temp, freq, current, volts, status = parts[2:]
        charging = energy.charging_status(status if status != "-" else None)
        self.raw.append((uptime, Sample(
            0.0, int(rss) * 1024 if rss.isdigit() else None, phonestate.celsius(_int(temp)), _int(freq),
            None, energy.voltage_uv(volts if volts != "-" else None), charging), current if current != "-" else None))

    def samples(self) -> tuple[Sample, ...]:
        """The samples on the runner's clock (seconds since it started; the idle ones before are negative), the
        gauge's unit decided once for the run from its readings' median size (``energy.run_unit``)."""
        if self.t0 is None:
            return ()
        unit = self.unit or energy.run_unit([current for _, _, current in self.raw])
        return tuple(dataclasses.replace(sample, t_s=round(uptime - self.t0, 3),
                                         current_ua=energy.current_ua(current, sample.charging, unit))
                     for uptime, sample, current in self.raw)


def _float(text: str) -> Optional[float]:
    try:
        return float(text)
    except ValueError:
        return None


def _int(text: str) -> Optional[int]:
    return int(text) if text.lstrip("-").isdigit() else None


class RunDeadline:
    """How long a run may take, set from what it is expected to take and revised as it goes.

    Before the first timed execution: a load allowance that grows with the model's size, plus
    a per-execution allowance. After each execution the runner reports, the rest is planned at
    four times the slowest execution seen so far, plus a margin.
    """

    def __init__(self, executions: int, model_bytes: int, per_execution_s: float = 30.0, margin_s: float = 30.0):
        self.executions, self.margin_s = executions, margin_s
        self.start = time.monotonic()
        self.deadline = self.start + margin_s + 60.0 + model_bytes / (10 << 20) + executions * per_execution_s
        self.slowest_s = 0.0

    def seen(self, done: int, took_ms: float) -> None:
        self.slowest_s = max(self.slowest_s, took_ms / 1000.0)
        self.deadline = time.monotonic() + self.margin_s + 4 * self.slowest_s * max(0, self.executions - done)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    @property
    def total_s(self) -> float:
        return self.deadline - self.start


class AdbDevice:
    """A phone named in the inventory."""

    kind = "adb"

    def __init__(self, config: DeviceConfig, transport: Optional[Transport] = None):
        self.config = config
        self.name = config.name
        self.transport = transport or make_transport(config)
        self._props: Optional[dict[str, str]] = None
        self._runner: Optional[PhoneRunner] = None
        self._not_flushed: Optional[Note] = None

    def __enter__(self) -> AdbDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def defaults(self) -> RunDefaults:
        config = self.config
        affinity = phonestate.mask_cores(config.cpu_mask) if config.cpu_mask else None
        return RunDefaults(config.warmup, config.iterations, config.threads, config.cooldown_s, affinity,
                           config.backend)

    # -- the choke point ------------------------------------------------------------------------
    def call(self, step: str, command: str, action: Callable[[], object]):
        """Run one transport operation; failures become ``DeviceError`` (``UnreachableError`` when the link broke)."""
        try:
            return action()
        except NotAuthorizedError as error:
            raise UnauthorizedError(f"{self.name} ({self.transport.target}): {error}", device=self.name, step=step,
                                   command=command) from None
        except TransportError as error:
            raise UnreachableError(f"{self.name} ({self.transport.target}) failed during {step}: {error}",
                                   device=self.name, step=step, command=command) from None

    def shell(self, command: str, step: str, timeout_s: float = SHORT_S, check: bool = True,
              on_line=None, idle_s: Optional[float] = None) -> ShellResult:
        result: ShellResult = self.call(step, command,
                                        lambda: self.transport.shell(command, timeout_s, on_line, idle_s))
        if check and result.exit_code != 0:
            output = result.output.strip()
            raise DeviceError(f"{self.name}: `{_short(command)}` failed during {step} (exit {result.exit_code})"
                              + (f": {output.splitlines()[-1]}" if output else ""), device=self.name, step=step,
                              command=command, exit_code=result.exit_code, output=result.output)
        return result

    def push(self, local: Path, remote: str, step: str = "push", progress: Optional[ProgressCallback] = None) -> None:
        size = local.stat().st_size
        timeout = SHORT_S + size / MIN_BYTES_PER_S
        report = (lambda done, total: progress("push", done, total)) if progress else None
        self.call(step, f"push {local} {remote}", lambda: self.transport.push(local, remote, timeout, report))

    def pull(self, remote: str, local: Path, size: int, step: str = "pull",
             progress: Optional[ProgressCallback] = None) -> None:
        """Pull into ``local`` through a temporary file, so that a broken pull leaves nothing behind."""
        timeout = SHORT_S + size / MIN_BYTES_PER_S
        partial = local.with_name(f".{local.name}.partial")
        report = (lambda done, total: progress("pull", done, total)) if progress else None
        try:
            self.call(step, f"pull {remote} {local}", lambda: self.transport.pull(remote, partial, timeout, report))
            os.replace(partial, local)
        finally:
            partial.unlink(missing_ok=True)

    def close(self) -> None:
        self.transport.close()

    def abort(self) -> None:
        """Close the connection under the call in progress (the phone ends the shell and its runner)."""
        self.transport.close()

    # -- what the phone is ----------------------------------------------------------------------
    def props(self) -> dict[str, str]:
        if self._props is None:
            self._props = phonestate.parse_props(self.shell(phonestate.PROPS, "describe").output)
        return self._props

    def describe(self) -> DeviceInfo:
        props = self.props()
        android = props.get("ro.build.version.release")
        sdk = props.get("ro.build.version.sdk")
        model = " ".join(filter(None, (props.get("ro.product.manufacturer"), props.get("ro.product.model"))))
        runner = self._runner
        return DeviceInfo(
            self.name, EMULATED if self.emulated else self.kind,
            serial=props.get("ro.serialno") or self.transport.target,
            product_model=model or None, abi=props.get("ro.product.cpu.abi"),
            os=f"Android {android} (SDK {sdk})" if android else None, runner=runner.path if runner else None,
            build=props.get("ro.build.fingerprint") or props.get("ro.build.id"),
            runner_sha256=runner.sha256 if runner else None, runner_kind=runner.kind if runner else None)

    @property
    def emulated(self) -> bool:
        """The phone's CPU is emulated (``ro.kernel.qemu``, as Android's emulator and rebirth's qemu phone say)."""
        return self.props().get("ro.kernel.qemu") == "1"

    def snapshot(self, step: str = "state") -> phonestate.Snapshot:
        return phonestate.parse_snapshot(self.shell(phonestate.SNAPSHOT, step, check=False).output)

    def state(self) -> DeviceState:
        return self.snapshot().state()

    def battery(self) -> Battery:
        return phonestate.parse_battery(self.shell(phonestate.BATTERY, "battery", check=False).output)

    def report(self) -> DeviceReport:
        snapshot = self.snapshot("info")
        return DeviceReport(self.describe(), self.props(), snapshot.cores, snapshot.zones, self.battery(),
                            self.config.cpu_mask or phonestate.big_core_mask(snapshot.cores))

    # -- the runner -----------------------------------------------------------------------------
    @property
    def workdir(self) -> str:
        return self.config.workdir

    def find_runner(self, progress: Optional[ProgressCallback] = None) -> PhoneRunner:
        """The runner to use on the phone: the inventory's (pushed when it changed), else an
        ``executor_runner`` the phone has, else rebirth's own for the phone's ABI (pushed when it changed).

        Raises:
            ConfigError: the inventory's runner is not a file, or the phone has no runner and rebirth builds
                none for its ABI.
            MissingToolError: rebirth's runner for the phone cannot be built here.
        """
        if self._runner is None:
            self._runner = self._inventory_runner(progress) or self._phone_runner() or self._rebirth_runner(progress)
        return self._runner

    def _inventory_runner(self, progress: Optional[ProgressCallback]) -> Optional[PhoneRunner]:
        local = self.config.runner
        if local is None:
            return None
        if not local.is_file():
            raise ConfigError(f"{self.config.source}: runner {local} is not a file", device=self.name, step="runner")
        remote = f"{self.workdir}/bin/executor_runner"
        self.push_if_changed(local, remote, progress)
        self.shell(f"chmod 755 {q(remote)}", "push")
        identity = sha256_file(local)
        return PhoneRunner((remote,), remote, EXTERNAL, identity, self._pairs((remote,), identity))

    def _phone_runner(self) -> Optional[PhoneRunner]:
        found = self.shell("command -v executor_runner", "runner", check=False).output.strip().splitlines()
        if not found or not found[-1].startswith("/"):
            return None
        identity = self.remote_sha256(found[-1])
        return PhoneRunner((found[-1],), found[-1], EXTERNAL, identity, self._pairs((found[-1],), identity))

    def _pairs(self, argv: tuple[str, ...], identity: Optional[str]) -> bool:
        """Whether a runner is rebirth's (its usage names --paired_model_path).

        The answer is kept in the cache under the runner's sha256, so that a run asks each runner once, not
        every time (a runner's ``--help`` loads the binary on the phone, and ran before every run).
        """
        known = _runner_usage_cache(identity)
        if known is not None and known.is_file():
            try:
                return bool(json.loads(known.read_text())["pairs"])
            except (OSError, ValueError, KeyError, TypeError):
                pass  # unreadable: ask the runner again
        usage = self.shell(f"{' '.join(q(arg) for arg in argv)} --help 2>&1", "runner", check=False)
        pairs = "--paired_model_path" in usage.output
        if known is not None and usage.exit_code not in (126, 127) and usage.output.strip():  # it ran
            try:
                write_json_atomic(known, {"pairs": pairs})
            except OSError:
                pass  # a read-only cache: ask again next time
        return pairs

    def _rebirth_runner(self, progress: Optional[ProgressCallback]) -> PhoneRunner:
        from rebirth.devices.native import ARM64, arm64_bundle

        abi = self.props().get("ro.product.cpu.abi") or "an unknown ABI"
        if abi != ARM64:
            raise ConfigError(
                f"{self.name}: no executor_runner on the phone, and rebirth builds its own only for {ARM64} phones "
                f"(this one is {abi}): build ExecuTorch's executor_runner for {abi} with the event tracer "
                f"(docs/phones.md, 'A phone with your own executor_runner') and set runner = \"PATH\" under "
                f"[devices.{self.name}] in {self.config.source or 'devices.toml'}", device=self.name, step="runner")
        if progress:
            progress("build", 0, 1)
        bundle = arm64_bundle()
        if progress:
            progress("build", 1, 1)
        folder = f"{self.workdir}/bin/rebirth-{ARM64}"
        self.push_bundle(bundle, folder, progress)
        launcher = f"{folder}/{BUNDLE_LAUNCHER}"
        identity = hashlib.sha256(json.dumps(bundle.sha256(), sort_keys=True).encode()).hexdigest()
        return PhoneRunner(("sh", launcher), launcher, NATIVE, identity, pairs=True)

    def push_bundle(self, bundle: Bundle, folder: str, progress: Optional[ProgressCallback] = None) -> int:
        """Push the bundle's files that the phone does not have with the same bytes; how many it pushed."""
        listing = self.shell(f"sha256sum {q(folder)}/* 2>/dev/null", "push", check=False).output.split("\n")
        have = {line.split()[1].rsplit("/", 1)[-1]: line.split()[0] for line in listing if len(line.split()) == 2}
        stale = [name for name, digest in bundle.sha256().items() if have.get(name) != digest]
        if stale:
            self.shell(f"mkdir -p {q(folder)}", "push")
        for name in stale:
            self.push(bundle.folder / name, f"{folder}/{name}", progress=progress)
        if stale:
            self.shell(f"chmod 755 {' '.join(q(f'{folder}/{name}') for name in stale)}", "push")
        return len(stale)

    def remote_sha256(self, remote: str) -> Optional[str]:
        output = self.shell(f"sha256sum {q(remote)} 2>/dev/null", "push", check=False).output.split()
        return output[0] if output and re.fullmatch(r"[0-9a-f]{64}", output[0]) else None

    def push_if_changed(self, local: Path, remote: str, progress: Optional[ProgressCallback] = None) -> bool:
        """Push ``local`` unless the phone already has the same bytes there; True when it pushed."""
        if self.remote_sha256(remote) == sha256_file(local):
            return False
        self.shell(f"mkdir -p {q(remote.rsplit('/', 1)[0])}", "push")
        self.push(local, remote, progress=progress)
        return True

    def run(self, request: RunRequest, workdir: Path, progress: Optional[ProgressCallback] = None) -> RunResult:
        """Push what changed, run the runner pinned and watched, pull the ETDump, clean up."""
        runner = self.find_runner(progress)
        model = self._push_model(request.model_path, progress)
        paired = self._push_model(request.paired_model_path, progress) if request.paired_model_path else None
        if request.cooldown_s:
            time.sleep(request.cooldown_s)
        cooling = self._cool(request) if request.gate else None
        if not self.config.unplug:
            return self._measure(request, workdir, progress, runner, model, paired, cooling)
        try:  # the framework then reports unplugged; the gauge's status says whether it still charges
            self._unplug()
            return self._measure(request, workdir, progress, runner, model, paired, cooling)
        finally:
            self._reset_battery()

    def _measure(self, request: RunRequest, workdir: Path, progress: Optional[ProgressCallback],
                 runner: PhoneRunner, model: str, paired: Optional[str], cooling: Optional[Cooling]) -> RunResult:
        """The run itself, once the phone has cooled: read its state, run the runner watched, pull the ETDump."""
        not_flushed = self.drop_page_cache() if request.drop_page_cache else None
        before = self.snapshot("state")
        if cooling is not None:
            thermal.remember(self._thermal_key(), before.state().temperature_c)
        mask = (phonestate.core_mask(request.cpu_affinity) if request.cpu_affinity else
                self.config.cpu_mask or phonestate.big_core_mask(before.cores))
        threads = request.threads or self.config.threads or (len(phonestate.mask_cores(mask)) if mask else None)
        run_dir = f"{self.workdir}/runs/{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        self.shell(f"mkdir -p {q(run_dir)}", "prepare")
        self._prune_stale_runs()
        try:
            log, watch, code, command = self._execute(runner, model, run_dir, request, mask, threads, progress,
                                                      paired=paired, before=before)
            if code != 0:
                raise runlog.runner_failure(self.name, command, code, log)
            after = self.snapshot("state")
            etdump = None
            if request.etdump:
                etdump = workdir / "model.etdp"
                self._pull_etdump(f"{run_dir}/model.etdp", etdump, progress)
        finally:
            self._cleanup(run_dir)
        parsed = runlog.parse_log(log)
        said = tuple(note for note in (EMULATED_NOTE if self.emulated else None, not_flushed) if note is not None)
        return RunResult(etdump, parsed, max(filter(None, (watch.peak, parsed.peak_rss_bytes)), default=None),
                         before.state(), after.state(), threads=threads, cpu_affinity=mask, notes=said,
                         runner_cpu_ticks=watch.cpu_ticks, cooling=cooling, samples=watch.samples(),
                         sampled_core=phonestate.fastest_core(mask, before.cores),
                         energy_gauge=self._gauge_name(before.battery) if before.battery else None,
                         page_cache_flushed=None if not request.drop_page_cache else not_flushed is None)

    def _unplug(self) -> None:
        """``dumpsys battery unplug``, then a second for the battery's status to follow (where the charger
        honours it; where it does not, the status stays "Charging" and the energy says so)."""
        self.shell("dumpsys battery unplug; i=0; while [ $i -lt 10 ]; do for p in /sys/class/power_supply/*; do "
                   "read -r k < \"$p/type\" 2>/dev/null; [ \"$k\" = Battery ] || continue; read -r s < \"$p/status\" "
                   "2>/dev/null; [ \"$s\" = Charging ] || exit 0; done; i=$((i + 1)); sleep 0.1; done", "unplug",
                   check=False)

    def _reset_battery(self) -> None:
        try:
            self.shell("dumpsys battery reset", "unplug", check=False)
        except DeviceError:
            pass  # the phone is gone; the error that matters is already on its way

    def _thermal_key(self) -> str:
        return self.props().get("ro.serialno") or self.transport.target

    def _cool(self, request: RunRequest) -> Cooling:
        """Wait for the phone to cool below its limit (``devices.thermal``), within the bound."""
        configured: Optional[float] = self.config.cool_below_c
        source = "devices.toml"
        if request.cool_below_c is not None:
            configured, source = request.cool_below_c, "--cool-below"
        limit, source = thermal.limit_for(self._thermal_key(), configured, source)
        return thermal.cool(lambda: self.snapshot("cool").state().temperature_c, limit, source,
                            thermal.wait_bound(request, self.config.cool_wait_s))

    def _gauge_name(self, battery: str) -> str:
        unit = self.config.gauge_unit or "unit guessed from the readings' size"
        return f"{battery}/current_now ({unit})"

    def drop_page_cache(self) -> Optional[Note]:
        """Drop the phone's page cache (``/proc/sys/vm/drop_caches``: as root, or through ``su``); a note saying
        why not where it cannot. A phone that refused once is not asked again (``su`` may ask its user)."""
        if self._not_flushed is None:
            output = self.shell(DROP_CACHES, "flush", check=False).output
            if "__flushed" in output:
                return None
            why = ("the phone is not rooted (drop_caches needs root: adb root, or su)" if "__not_root" in output
                   else f"drop_caches was refused: {runlog.last_error(output)}")
            self._not_flushed = Note(notes.NOT_FLUSHED, f"page cache not flushed: {why}")
        return self._not_flushed

    def pairs_in_process(self) -> bool:
        return self.find_runner().pairs

    def _push_model(self, local: Path, progress: Optional[ProgressCallback]) -> str:
        remote = f"{self.workdir}/models/{_safe_name(local.name)}"
        self.push_if_changed(local, remote, progress)
        return remote

    def run_command(self, runner: PhoneRunner, model: str, run_dir: str, executions: int, mask: Optional[str],
                    threads: Optional[int], etdump: bool = True, paired: Optional[tuple[str, int]] = None) -> str:
        """The runner's command line, every argument quoted: executor_runner's own flags only, but for
        ``paired`` (the second program and the warm-up count), which only rebirth's runner takes."""
        args = [*runner.argv, "--model_path", model, "--num_executions", str(executions)]
        if paired:
            args = [*runner.argv, "--model_path", model, "--paired_model_path", paired[0], "--warmup",
                    str(paired[1]), "--num_executions", str(executions - paired[1])]
        if etdump:
            args += ["--etdump_path", f"{run_dir}/model.etdp"]
        if threads:
            args += ["--cpu_threads", str(threads)]
        pinned = (["taskset", mask] if mask else []) + args
        return " ".join(q(arg) for arg in pinned)

    def _execute(self, runner, model, run_dir, request: RunRequest, mask, threads, progress, paired=None,
                 before: Optional[phonestate.Snapshot] = None):
        executions = request.warmup + request.iterations
        command = self.run_command(runner, model, run_dir, executions, mask, threads, request.etdump,
                                   (paired, request.warmup) if paired else None)
        snapshot = before or phonestate.Snapshot((), ())
        battery = snapshot.battery
        # The idle draw is read only where the gauge can give a number: a charging phone's says nothing of the
        # model (unless the inventory unplugs it, whose status may follow a moment later).
        metered = battery is not None and (energy.charging_status(snapshot.battery_status) is False
                                           or self.config.unplug)
        sample = phonestate.sampler(snapshot.hottest_zone(), phonestate.fastest_core(mask, snapshot.cores), battery)
        # The idle draw: looks every POLL_S until the gauge has given IDLE_READINGS new values, or IDLE_POLLS looks.
        idle = (f"i=0; n=0; last=; while [ $i -lt {IDLE_POLLS} ] && [ $n -lt {IDLE_READINGS} ]; do {sample}; "
                f"[ \"$c\" = \"$last\" ] || n=$((n + 1)); last=$c; i=$((i + 1)); sleep {POLL_S}; done\n"
                if metered else "")
        slow = POLL_S if metered else SLOW_POLL_S
        # The runner in the background, waited for at once; beside it a poller reads its VmHWM from /proc (a
        # heartbeat too), ten times a second at first, then twice, so that it costs the phone little. Once the
        # runner is reaped, this shell's own children's CPU time (its /proc/self/stat) is the runner's whole CPU
        # time, its children's included, read after its end rather than at the poller's last look.
        # Each look also prints a sample (``__s``: memory, temperature, clock, battery), on the phone's uptime;
        # where the battery is metered, ``IDLE_POLLS`` looks before the runner starts give its idle draw.
        script = (f"cd {q(run_dir)} || exit 90\n"
                  "r() { v=; read -r v 2>/dev/null < \"$1\"; [ -n \"$v\" ] || v=-; }\npid=0\n"
                  f"{idle}read -r up rest < /proc/uptime; echo \"__t0 $up\"\n"
                  f"{command} 2>&1 &\npid=$!\necho \"__pid $pid\"\n"
                  "(n=0; while kill -0 $pid 2>/dev/null; do\n"
                  "  while read -r key value unit; do [ \"$key\" = VmHWM: ] && echo \"__hwm $value\"; done"
                  " 2>/dev/null < /proc/$pid/status\n"
                  f"  {sample}\n"
                  f"  n=$((n + 1)); if [ $n -lt {FAST_POLLS} ]; then sleep {POLL_S}; else sleep {slow}; fi"
                  " </dev/null >/dev/null 2>&1\n"
                  "done) &\npoller=$!\nwait $pid\nrc=$?\n"
                  "read -r stat 2>/dev/null < /proc/self/stat && echo \"__children ${stat##*) }\"\n"
                  "kill $poller 2>/dev/null\nexit $rc")
        deadline = RunDeadline(executions, request.model_path.stat().st_size)
        lines: list[str] = []
        watch = _Watch(unit=self.config.gauge_unit)

        def on_line(line: str) -> None:
            if line.startswith("__s "):
                watch.sample(line)
            elif line.startswith("__t0 "):
                watch.start(line)
            elif line.startswith("__pid "):
                watch.pid = line.split()[1]
            elif line.startswith("__hwm "):
                kib = line.split()[1]
                if kib.isdigit():
                    watch.peak = max(watch.peak or 0, int(kib) * 1024)
            elif line.startswith("__children "):  # proc(5): cutime and cstime, fields 16 and 17
                fields = line.split()[1:]
                if len(fields) > 14 and fields[13].isdigit() and fields[14].isdigit():
                    watch.cpu_ticks = int(fields[13]) + int(fields[14])
            else:
                lines.append(line)
                done = runlog.report_progress(line, request.warmup, request.iterations, progress)
                if done:
                    deadline.seen(done[0], runlog.iteration_ms(line) or 0.0)
            if deadline.remaining() < 0:
                raise TransportError(f"the run took longer than the {deadline.total_s:.0f} s planned for it")

        try:
            result = self.shell(script, "run", timeout_s=deadline.total_s * 4, check=False, on_line=on_line,
                                idle_s=SHORT_S)
        except DeviceError:
            self._kill(watch.pid)
            raise
        return "".join(lines), watch, result.exit_code, command

    def _pull_etdump(self, remote: str, local: Path, progress) -> None:
        size_text = self.shell(f"stat -c %s {q(remote)} 2>/dev/null || echo missing", "pull").output.strip()
        if not size_text.isdigit():
            local.write_bytes(b"")  # no ETDump: the profiler says the runner lacks the event tracer
            return
        self.pull(remote, local, int(size_text), progress=progress)

    def _prune_stale_runs(self) -> None:
        """Remove run folders that a lost connection left behind more than an hour ago."""
        runs = f"{self.workdir}/runs"
        self.shell(f"find {q(runs)} -mindepth 1 -maxdepth 1 -type d -mmin +{STALE_RUN_MIN} -exec rm -rf {{}} + "
                   "2>/dev/null", "prepare", check=False)

    def _cleanup(self, run_dir: str) -> None:
        try:
            self.shell(f"rm -rf {q(run_dir)}", "cleanup", check=False)
        except DeviceError:
            pass  # the phone is gone; the error that matters is already on its way

    def _kill(self, pid: Optional[str]) -> None:
        if pid and pid.isdigit():
            try:
                self.shell(f"kill {q(pid)} 2>/dev/null", "cleanup", check=False, timeout_s=5.0)
            except DeviceError:
                pass

    # -- rebirth devices check ------------------------------------------------------------------
    def check(self, probe: Optional[ProbeModel] = None) -> list[CheckItem]:
        """Reachable, authorized, runner present and (given a probe model) built with the event tracer."""
        try:
            self.props()
        except UnauthorizedError as error:
            return [CheckItem("reachable", True, self.transport.target), CheckItem("authorized", False, str(error))]
        except UnreachableError as error:
            return [CheckItem("reachable", False, str(error))]
        items = [CheckItem("reachable", True, self.transport.target), CheckItem("authorized", True, "shell works")]
        try:
            runner = self.find_runner()
            items.append(CheckItem("runner", True, f"{runner.path} ({runner.kind})"))
        except (DeviceError, InputError) as error:
            return items + [CheckItem("runner", False, str(error))]
        if probe is not None:
            items.append(self._check_tracer(probe()))
        return items

    def _check_tracer(self, probe_pte: Path) -> CheckItem:
        request = RunRequest(probe_pte, iterations=1, warmup=0, threads=1)
        with tempfile.TemporaryDirectory(prefix="rebirth-check-") as folder:
            try:
                result = self.run(request, Path(folder))
            except RunnerError as error:
                if error.step == "start":
                    return CheckItem("runner starts", False, str(error))
                return CheckItem("event tracer", False, f"the runner failed on a probe model: {error}")
            size = result.etdump_path.stat().st_size if result.etdump_path else 0
        if size == 0:
            return CheckItem("event tracer", False, "the runner wrote no ETDump: rebuild it with "
                             "-DEXECUTORCH_BUILD_DEVTOOLS=ON -DEXECUTORCH_ENABLE_EVENT_TRACER=ON")
        return CheckItem("event tracer", True, f"a probe run wrote a {size}-byte ETDump")


def make_transport(config: DeviceConfig) -> Transport:
    from rebirth.devices.transport import AdbServerTransport, AdbShellTransport

    if config.transport == "adb-server":
        assert config.serial, "the inventory requires a serial for an adb-server phone"
        return AdbServerTransport(config.serial)
    return AdbShellTransport(address=config.address, serial=config.serial, usb=config.transport == "usb",
                             key_path=config.key, auth_timeout_s=config.auth_timeout_s)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "model.pte"


def _short(command: str) -> str:
    first = command.strip().splitlines()[0] if command.strip() else command
    return first if len(first) <= 80 else first[:77] + "..."
