"""Profile a model on a device: export it if needed, read the .pte once, run it, build the Profile."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from rebirth.contract.device import DeviceInfo
from rebirth.contract.errors import MissingOperatorError, ModelFileError, ModelRejectedError, RunnerError
from rebirth.contract.profile import Latency, Profile, Settings
from rebirth.devices import Device, ProgressCallback, RunDefaults, RunLog, RunRequest, RunResult
from rebirth.models import Exported, PteFile

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
                    progress: Optional[ProgressCallback] = None, stage: Optional[Stage] = None) -> Profile:
    """Run a prepared program on an open device and build its Profile (the farm runs one program on
    many devices this way)."""
    announce = stage or _silent
    options = options.resolved(device.defaults)
    announce("run")
    with tempfile.TemporaryDirectory(prefix="rebirth-run-") as workdir:
        result = _run(device, run_request(program, options), Path(workdir), progress)
        announce("analyse")
        return _build(program, result, device.describe(), options)


def run_request(program: Program, options: ProfileOptions, traced: bool = True) -> RunRequest:
    """What to ask the device for, with ``options`` resolved against the device's defaults."""
    assert options.warmup is not None and options.iterations is not None
    return RunRequest(program.pte.path.resolve(), options.iterations, options.warmup, options.threads,
                      options.cpu_affinity, cooldown_s=options.cooldown_s or 0.0, etdump=traced)


def timed_samples(samples: tuple[float, ...], log: RunLog, warmup: int) -> tuple[float, ...]:
    """The timed executions of a log's samples: a runner not told of the warm-ups ran them first."""
    return samples if log.warmups or not warmup else samples[warmup:]


def time_program(program: Program, device: Device, options: ProfileOptions,
                 progress: Optional[ProgressCallback] = None) -> tuple[Latency, RunResult, DeviceInfo]:
    """Run a prepared program without reading an ETDump: the latency of its timed runs as the runner logged
    them (rebirth's runners log every execution), its memory, and the device over the run. Many runs can
    be measured this way quickly; a runner that logs no execution times is profiled in full instead.

    Raises:
        DeviceError, InputError: as ``profile_program``.
    """
    options = options.resolved(device.defaults)
    with tempfile.TemporaryDirectory(prefix="rebirth-run-") as workdir:
        result = _run(device, run_request(program, options, traced=False), Path(workdir), progress)
    described = device.describe().with_run(result.state_before, result.state_after, result.runner_cpu_ticks)
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
    described = device.describe().with_run(result.state_before, result.state_after, result.runner_cpu_ticks)
    return (Latency.from_samples(samples), Latency.from_samples(result.log.paired_execution_ms), result,
            described)


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
    device = description.with_run(result.state_before, result.state_after, result.runner_cpu_ticks)
    built = build_profile(program.pte, program.exported.etrecord, program.source, measurement, device, settings)
    return replace(built, warnings=result.notes + built.warnings) if result.notes else built


def _silent(text: str) -> None:
    """A stage callback that says nothing."""

