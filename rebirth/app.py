"""The wiring: model spec -> .pte -> device run -> Profile. The CLI calls these."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from devices import DeviceDescription, DeviceState, RunRequest, open_device
from devices.errors import ModelRejectedError
from profiler.errors import MissingOperatorError, ModelFileError
from profiler.record import CoreInfo, DeviceInfo, Profile, Settings

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ProfileOptions:
    device: str = "local"
    backend: str = "xnnpack"
    warmup: int = 3
    iterations: int = 20
    threads: Optional[int] = None
    etrecord: Optional[Path] = None
    cooldown_s: float = 0.0


def profile(model: str, options: ProfileOptions, progress: Optional[Progress] = None,
            stage: Optional[Callable[[str], None]] = None) -> Profile:
    """Export if needed, run on the device, and build the Profile.

    Raises:
        profiler.InputError: the model argument, file or ETDump is wrong.
        devices.DeviceError: the device is unknown, unreachable, or the runner failed.
    """
    from profiler import pte
    from profiler.sources import PTE, parse_spec

    announce = stage or (lambda text: None)
    spec = parse_spec(model)
    device = open_device(options.device)
    if spec.kind == PTE:
        pte.check_pte(spec.path)
    from profiler.export import ensure_pte
    from profiler.quiet import import_heavy

    announce("export" if spec.kind != PTE else "read")
    import_heavy()
    exported = ensure_pte(spec, options.backend, options.etrecord)
    pte.load_program(exported.pte)
    request = RunRequest(exported.pte.resolve(), options.iterations, options.warmup, options.threads,
                         cooldown_s=options.cooldown_s)
    announce("run")
    with tempfile.TemporaryDirectory(prefix="rebirth-run-") as workdir:
        result = _run(device, request, Path(workdir), progress)
        announce("analyse")
        return _build(exported, spec.text, result, device.describe(), options)


def _run(device, request: RunRequest, workdir: Path, progress: Optional[Progress]):
    try:
        return device.run(request, workdir, progress)
    except ModelRejectedError as error:
        if error.step == "run" and "operator" in str(error):
            raise MissingOperatorError(f"{request.model_path.name}: {error}") from None
        raise ModelFileError(f"{request.model_path.name}: {error}") from None


def _build(exported, source: str, result, description: DeviceDescription, options: ProfileOptions) -> Profile:
    from devices import runlog
    from profiler.build import Measurement, build_profile

    log = runlog.parse_log(result.log)
    measurement = Measurement(result.etdump_path, log.load_ms, result.peak_rss_bytes, result.baseline_rss_bytes,
                              log.execution_ms)
    settings = Settings(options.warmup, options.iterations, options.threads, None, options.cooldown_s)
    device = device_info(description, result.state_before, result.state_after)
    return build_profile(exported.pte, exported.etrecord, source, measurement, device, settings)


def device_info(description: DeviceDescription, before: DeviceState, after: DeviceState) -> DeviceInfo:
    """The Profile's view of a device: what it is plus its state before and after the run."""
    end = {core.index: core for core in after.cores}
    cores = tuple(CoreInfo(c.index, c.max_freq_khz, c.governor, c.cur_freq_khz,
                           end[c.index].cur_freq_khz if c.index in end else None) for c in before.cores)
    return DeviceInfo(description.name, description.kind, description.serial, description.product_model,
                      description.abi, description.os, cores, before.temperature_c, after.temperature_c,
                      _throttled(before, after), description.runner)


def _throttled(before: DeviceState, after: DeviceState) -> Optional[bool]:
    """True when a core ended the run clocked below 90% of its maximum while it started at it."""
    pairs = [(b, a) for b, a in zip(before.cores, after.cores) if b.max_freq_khz and a.cur_freq_khz]
    if not pairs:
        return None
    return any(a.cur_freq_khz < 0.9 * b.max_freq_khz <= (b.cur_freq_khz or 0) for b, a in pairs)


def export(model: str, backend: str, out: Path):
    """Write ``out`` (.pte) and its .etrecord for a model that is not a .pte yet."""
    from profiler.export import export_to
    from profiler.quiet import import_heavy
    from profiler.sources import parse_spec

    spec = parse_spec(model)
    import_heavy()
    return export_to(spec, backend, out)
