"""Profile a model on a device: export it if needed, read the .pte once, run it, build the Profile."""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from rebirth.contract.cold import ColdStart
from rebirth.contract.device import DeviceInfo
from rebirth.contract.errors import MissingOperatorError, ModelFileError, ModelRejectedError, RunnerError
from rebirth.contract.profile import Energy, Latency, Profile, Settings
from rebirth.devices import Device, ProgressCallback, RunDefaults, RunLog, RunRequest, RunResult
from rebirth.models import Exported, PteFile
from rebirth.profiler.cold import COLD_EXECUTIONS, cold_requests, measure_cold

if TYPE_CHECKING:
    from rebirth.profiler.timeline import Timelines

Stage = Callable[[str], None]
"""Called with the name of each stage as it starts: ``export``, ``read``, ``run``, ``analyse``."""

DEFAULT_WARMUP, DEFAULT_ITERATIONS = 3, 20
DEFAULT_BACKEND = "xnnpack"


@dataclass(frozen=True)
class ProfileOptions:
    device: str = "local"
    backend: Optional[str] = None
    """None: the device's setting in devices.toml, else xnnpack."""
    warmup: Optional[int] = None
    """None: the device's setting in devices.toml, else 3."""
    iterations: Optional[int] = None
    """None: the device's setting in devices.toml, else 20."""
    threads: Optional[int] = None
    etrecord: Optional[Path] = None
    cooldown_s: Optional[float] = None
    cool_below_c: Optional[float] = None
    """Wait before each run until the device's hottest zone is below this; None: its inventory's or learned."""
    cool_wait_s: Optional[float] = None
    cool_wait_cap_s: Optional[float] = None
    """At most this wait, whatever the device's setting (what is left of a comparison's time budget)."""
    thermal_gate: bool = True
    """Wait for the device to cool before each measured run, and leave out of a paired comparison a block whose
    clocks moved, that throttled or that ran too hot; False: neither (``--no-thermal-gate``)."""
    cold: int = 0
    """Fresh runner processes to time the program's start in (``ColdStart``); 0: none."""
    cold_executions: int = COLD_EXECUTIONS
    """Executions each of them times: the first inference and the warm-up curve."""
    cpu_affinity: Optional[tuple[int, ...]] = None
    """The device's cores to pin to; None: the device's setting in devices.toml, else its default."""

    def backend_on(self, defaults: RunDefaults) -> str:
        """The backend to lower to: this option's, else the device's in devices.toml, else xnnpack."""
        return self.backend or defaults.backend or DEFAULT_BACKEND

    def resolved(self, defaults: RunDefaults) -> ProfileOptions:
        """Options with the device's inventory settings filled in where the caller gave none."""
        def pick(value, configured, default):
            return value if value is not None else configured if configured is not None else default

        return replace(self, warmup=pick(self.warmup, defaults.warmup, DEFAULT_WARMUP),
                       iterations=pick(self.iterations, defaults.iterations, DEFAULT_ITERATIONS),
                       cooldown_s=pick(self.cooldown_s, defaults.cooldown_s, 0.0))


@dataclass(frozen=True)
class Program:
    """A model ready to run: its export (.pte and ETRecord), the .pte read once, and its name."""

    exported: Exported
    pte: PteFile
    source: str


def prepare(model: str, backend: str, etrecord: Optional[Path] = None, stage: Optional[Stage] = None) -> Program:
    """The .pte of ``model`` (exported and cached when it is not one), checked and read once.

    Raises:
        InputError: the model argument, file or export is wrong.
    """
    from rebirth.models import PTE, check_pte, ensure_pte, import_heavy, parse_spec, read_pte

    spec = parse_spec(model)
    if spec.kind == PTE:
        assert spec.path is not None
        check_pte(spec.path)
    (stage or _silent)("export" if spec.kind != PTE else "read")
    if spec.kind != PTE:  # a ready .pte is read without the compiler
        import_heavy()
    exported = ensure_pte(spec, backend, etrecord)
    return Program(exported, read_pte(exported.pte), spec.text)


def profile_program(program: Program, device: Device, options: ProfileOptions,
                    progress: Optional[ProgressCallback] = None, stage: Optional[Stage] = None, *,
                    timelines: Optional[Timelines] = None, role: Optional[str] = None) -> Profile:
    """Run a prepared program on an open device and build its Profile (the farm runs one program on
    many devices this way).

    Args:
        timelines: where the run's timeline goes, read from the ETDump before it is removed (``--trace``).
        role: what the run is in a larger job (``A``, ``before``), which starts its timeline's label.
    """
    announce = stage or _silent
    options = options.resolved(device.defaults)
    announce("run")
    with tempfile.TemporaryDirectory(prefix="rebirth-run-") as workdir:
        result = _run(device, run_request(program, options), Path(workdir), progress)
        announce("analyse")
        built = _build(program, result, device.describe(), options)
        if timelines is not None:
            assert result.etdump_path is not None
            timelines.add(result.etdump_path, label=f"{role}: {program.source}" if role else program.source,
                          device=device.name, warmup=options.warmup or 0, samples=result.samples)
    if not options.cold:
        return built
    announce("cold")
    return replace(built, cold=measure_cold_start(program, device, options, progress))


def measure_cold_start(program: Program, device: Device, options: ProfileOptions,
                       progress: Optional[ProgressCallback] = None) -> ColdStart:
    """Time the program's start in ``options.cold`` fresh processes on an open device (``profiler.cold``)."""
    settings = run_request(program, options, traced=False)  # threads, cores and the thermal gate, as a profile
    requests = [replace(request, threads=settings.threads, cpu_affinity=settings.cpu_affinity, gate=settings.gate,
                        cool_below_c=settings.cool_below_c, cool_wait_s=settings.cool_wait_s,
                        cool_wait_cap_s=settings.cool_wait_cap_s)
                for request in cold_requests(program.pte.path.resolve(), options.cold, options.cold_executions)]
    return measure_cold(device, requests, lambda on, request, workdir: _run(on, request, workdir, None), progress)


def run_request(program: Program, options: ProfileOptions, traced: bool = True) -> RunRequest:
    """What to ask the device for, with ``options`` resolved against the device's defaults."""
    assert options.warmup is not None and options.iterations is not None
    return RunRequest(program.pte.path.resolve(), options.iterations, options.warmup, options.threads,
                      options.cpu_affinity, cooldown_s=options.cooldown_s or 0.0, etdump=traced,
                      cool_below_c=options.cool_below_c, cool_wait_s=options.cool_wait_s, gate=options.thermal_gate,
                      cool_wait_cap_s=options.cool_wait_cap_s)


def timed_samples(samples: tuple[float, ...], log: RunLog, warmup: int) -> tuple[float, ...]:
    """The timed executions of a log's samples: a runner not told of the warm-ups ran them first."""
    return samples if log.warmups or not warmup else samples[warmup:]


def time_program(program: Program, device: Device, options: ProfileOptions,
                 progress: Optional[ProgressCallback] = None, gate: bool = True
                 ) -> tuple[Latency, RunResult, DeviceInfo]:
    """Run a prepared program without reading an ETDump: the latency of its timed runs as the runner logged
    them (rebirth's runners log every execution), its memory, and the device over the run. Many runs can
    be measured this way quickly; a runner that logs no execution times is profiled in full instead.

    Raises:
        DeviceError, InputError: as ``profile_program``.
    """
    options = options.resolved(device.defaults)
    with tempfile.TemporaryDirectory(prefix="rebirth-run-") as workdir:
        request = replace(run_request(program, options, traced=False), gate=gate and options.thermal_gate)
        result = _run(device, request, Path(workdir), progress)
    described = device.describe().with_run(result.state_before, result.state_after, result.runner_cpu_ticks,
                                           running(result), result.cooling, result.sampled_core)
    samples = timed_samples(result.log.execution_ms, result.log, options.warmup or 0)
    if samples:
        return Latency.from_samples(samples, result.log.load_ms), result, described
    return profile_program(program, device, options, progress).latency, result, described


def time_pair(first: Program, second: Program, device: Device, options: ProfileOptions,
              progress: Optional[ProgressCallback] = None) -> tuple[Latency, Latency, RunResult, DeviceInfo]:
    """Both programs in one run of a runner that alternates them (``Device.pairs_in_process``): each one's
    latency, the run, and the device over it.

    Raises:
        DeviceError, InputError: as ``profile_program``; RunnerError when the runner did not pair them.
    """
    options = options.resolved(device.defaults)
    request = replace(run_request(first, options, traced=False), paired_model_path=second.pte.path.resolve())
    with tempfile.TemporaryDirectory(prefix="rebirth-run-") as workdir:
        result = _run(device, request, Path(workdir), progress)
    samples = timed_samples(result.log.execution_ms, result.log, options.warmup or 0)
    if not samples or not result.log.paired_execution_ms:
        raise RunnerError(f"{device.name}: the runner did not run the two programs side by side",
                          device=device.name, step="run", output=result.log.text)
    described = device.describe().with_run(result.state_before, result.state_after, result.runner_cpu_ticks,
                                           running(result), result.cooling, result.sampled_core)
    return (Latency.from_samples(samples), Latency.from_samples(result.log.paired_execution_ms), result,
            described)


def running(result: RunResult) -> tuple:
    """The samples taken while the runner executed the model (after its load)."""
    from rebirth.devices.energy import during_executions

    return tuple(during_executions(result.samples, result.log.load_ms))


def _run(device: Device, request: RunRequest, workdir: Path, progress: Optional[ProgressCallback]) -> RunResult:
    try:
        return device.run(request, workdir, progress)
    except ModelRejectedError as error:
        if error.step == "run" and "operator" in str(error):
            raise MissingOperatorError(f"{request.model_path.name}: {error}") from None
        raise ModelFileError(f"{request.model_path.name}: {error}") from None


def _build(program: Program, result: RunResult, description: DeviceInfo, options: ProfileOptions) -> Profile:
    from rebirth.profiler.build import Measurement, build_profile

    assert options.warmup is not None and options.iterations is not None and result.etdump_path is not None
    log = result.log
    measurement = Measurement(result.etdump_path, log.load_ms, result.peak_rss_bytes, result.baseline_rss_bytes,
                              log.execution_ms)
    settings = Settings(warmup=options.warmup, iterations=options.iterations,
                        threads=result.threads or options.threads, cpu_affinity=result.cpu_affinity,
                        cooldown_s=options.cooldown_s or 0.0)
    device = description.with_run(result.state_before, result.state_after, result.runner_cpu_ticks,
                                  running(result), result.cooling, result.sampled_core)
    built = build_profile(program.pte, program.exported.etrecord, program.source, measurement, device, settings)
    built = replace(built, energy=energy_of(result, device.kind, built.latency.mean))
    return replace(built, warnings=result.notes + built.warnings) if result.notes else built


def energy_of(result: RunResult, kind: str, latency_mean_ms: float) -> Energy:
    """The energy per inference of a run from the battery gauge's samples, or why there is none. The draw lasts
    the runner's own time per execution (the tracer's op times sum to less); ``latency_mean_ms`` stands in for
    it when the runner logged none."""
    from rebirth.devices import energy

    logged = result.log.execution_ms
    mean_execution_ms = statistics.fmean(logged) if logged else latency_mean_ms
    if result.energy_gauge is None:
        where = "this host has no battery fuel gauge" if kind == "local" else \
            "the device shows no battery fuel gauge (/sys/class/power_supply/*/current_now)"
        return Energy(why_not=where)
    if any(sample.charging for sample in result.samples):
        return Energy(why_not=f"the phone was charging (on its charger): {energy.UNPLUG_HINT}",
                      gauge=result.energy_gauge)
    idle = [sample for sample in result.samples if sample.t_s < 0]
    running = energy.during_executions(result.samples, result.log.load_ms)
    if not running:
        return Energy(why_not="the run was over before the gauge could be read: a longer run (more --iterations) "
                              "gives a number", gauge=result.energy_gauge)
    return energy.estimate(idle, running, mean_execution_ms, result.energy_gauge)


def _silent(text: str) -> None:
    """A stage callback that says nothing."""

