"""The wiring: model spec -> .pte -> device run -> Profile. The CLI calls these."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
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
    warmup: Optional[int] = None
    """None: the device's setting in devices.toml, else 3."""
    iterations: Optional[int] = None
    """None: the device's setting in devices.toml, else 20."""
    threads: Optional[int] = None
    etrecord: Optional[Path] = None
    cooldown_s: Optional[float] = None

    def resolved(self, device) -> "ProfileOptions":
        """Options with the device's inventory settings filled in where the caller gave none."""
        config = getattr(device, "config", None)

        def pick(value, key, default):
            if value is not None:
                return value
            configured = getattr(config, key, None)
            return configured if configured is not None else default

        return replace(self, warmup=pick(self.warmup, "warmup", 3), iterations=pick(self.iterations, "iterations", 20),
                       cooldown_s=pick(self.cooldown_s, "cooldown_s", 0.0))


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
    options = options.resolved(device)
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
    try:
        with tempfile.TemporaryDirectory(prefix="rebirth-run-") as workdir:
            result = _run(device, request, Path(workdir), progress)
            announce("analyse")
            return _build(exported, spec.text, result, device.describe(), options)
    finally:
        close = getattr(device, "close", None)
        if close:
            close()


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
    settings = Settings(options.warmup, options.iterations, result.threads or options.threads, result.cpu_affinity,
                        options.cooldown_s)
    device = device_info(description, result.state_before, result.state_after)
    return build_profile(exported.pte, exported.etrecord, source, measurement, device, settings)


def device_info(description: DeviceDescription, before: DeviceState, after: DeviceState) -> DeviceInfo:
    """The Profile's view of a device: what it is plus its state before and after the run."""
    end = {core.index: core for core in after.cores}
    cores = tuple(CoreInfo(c.index, c.max_freq_khz, c.governor, c.cur_freq_khz,
                           end[c.index].cur_freq_khz if c.index in end else None) for c in before.cores)
    return DeviceInfo(description.name, description.kind, description.serial, description.product_model,
                      description.abi, description.os, cores, before.temperature_c, after.temperature_c,
                      _throttled(before, after), description.runner, description.build, description.runner_sha256)


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


def probe_pte() -> Path:
    """A tiny portable .pte that any executor_runner can run (exported once, then cached)."""
    import devices.probe_model as probe
    from profiler.export import ensure_pte
    from profiler.quiet import import_heavy
    from profiler.sources import parse_spec

    import_heavy()
    return ensure_pte(parse_spec(f"{probe.__file__}:probe"), "portable").pte


@dataclass(frozen=True)
class DeviceStatus:
    name: str
    kind: str
    target: str
    status: str
    detail: str = ""


def list_devices(timeout_s: float = 3.0) -> list[DeviceStatus]:
    """``local``, every inventory device with whether it answers, and the phones an adb server knows."""
    from concurrent.futures import ThreadPoolExecutor

    from devices.adbserver import server_devices
    from devices.inventory import load_inventory

    inventory = load_inventory()
    rows = [DeviceStatus("local", "local", "this host", "ready")]

    def probe(config) -> DeviceStatus:
        from devices.adb import AdbDevice
        from devices.errors import UnauthorizedError, UnreachableError

        device = AdbDevice(replace(config, auth_timeout_s=min(config.auth_timeout_s, timeout_s)))
        try:
            model = device.shell("getprop ro.product.model", "list", timeout_s=timeout_s).output.strip()
            return DeviceStatus(config.name, "adb", config.target, "ready", model)
        except UnauthorizedError:
            return DeviceStatus(config.name, "adb", config.target, "unauthorized",
                                "accept this computer's key on the phone")
        except UnreachableError as error:
            return DeviceStatus(config.name, "adb", config.target, "unreachable", str(error).split(": ", 1)[-1])
        finally:
            device.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        rows += list(pool.map(probe, inventory.values()))
    targets = {config.address or config.serial for config in inventory.values()}
    for entry in server_devices():
        if entry.serial not in targets:
            rows.append(DeviceStatus(entry.serial, "adb server", entry.serial, entry.state, entry.model or ""))
    return rows


@dataclass(frozen=True)
class DeviceReport:
    description: DeviceDescription
    props: dict
    snapshot: object
    battery: object
    mask: Optional[str]


def device_report(name: str) -> DeviceReport:
    """What `rebirth devices info` shows: identity, SoC, cores, clocks, temperatures, battery."""
    from devices import phonestate

    device = open_device(name)
    try:
        if getattr(device, "kind", "") == "local":
            from devices.hoststate import host_state

            state = host_state()
            snapshot = phonestate.Snapshot(state.cores, (phonestate.Zone(0, "hottest", state.temperature_c),)
                                           if state.temperature_c is not None else ())
            return DeviceReport(device.describe(), {}, snapshot, None, phonestate.big_core_mask(state.cores))
        snapshot = device.snapshot("info")
        return DeviceReport(device.describe(), device.props(), snapshot, device.battery(),
                            device.config.cpu_mask or phonestate.big_core_mask(snapshot.cores))
    finally:
        close = getattr(device, "close", None)
        if close:
            close()


def check_device(name: str, tracer: bool = True, stage: Optional[Callable[[str], None]] = None):
    """`rebirth devices check`: a list of CheckItem (reachable, authorized, runner, event tracer)."""
    from devices.adb import CheckItem

    device = open_device(name)
    if getattr(device, "kind", "") == "local":
        return [CheckItem("reachable", True, "this host"), CheckItem("runner", True, device.describe().runner)]
    try:
        def probe():
            if stage:
                stage("exporting a probe model")
            return probe_pte()

        return device.check(probe if tracer else None)
    finally:
        device.close()


@dataclass(frozen=True)
class SlimRequest:
    model: str
    outdir: Path
    profile: Optional[Path] = None
    backend: str = "xnnpack"
    plan_only: bool = False
    exact_only: bool = False
    max_accuracy_drop: float = 0.5
    block_steps: int = 40
    end_to_end_steps: int = 40
    seed: int = 0
    data: str = "digits"
    """``digits``, or ``file.py:NAME`` / ``package.module:NAME`` returning (train, held_out) DataLoaders."""
    min_gain: float = 0.02
    """Fraction of the measured time a learned merge must save."""


def load_for_slimming(spec, seed: int, say: Callable[[str], None]):
    """``(model, example_inputs, trained)``: zoo networks come with their digits-trained weights where
    rebirth trains them; other models as they are."""
    from profiler.sources import ZOO, load_python

    if spec.kind == ZOO:
        from slimmer.weights import trained

        found = trained(spec.name, seed, say)
        if found is not None:
            return found[0], found[1], True
        say(f"zoo:{spec.name} has no trained weights (rebirth trains the -small variants): "
            "merges are judged by agreement with the original's predictions instead of accuracy")
    model, inputs = load_python(spec)
    return model, inputs, False


def slim(request: SlimRequest, say: Callable[[str], None] = lambda text: None, progress: Optional[Progress] = None):
    """`rebirth slim`: plan, or slim and write slim.pt2, slim.pte, slim.etrecord and slim.json.

    Returns:
        The ranked candidates (``--plan``) or the written slim.json's dictionary.

    Raises:
        profiler.InputError: a .pte, a bad profile or model, or an unwritable OUTDIR.
    """
    from profiler.quiet import import_heavy

    spec = slimmable(request.model)
    import_heavy()
    from slimmer.data import user_loaders

    data = None if request.data == "digits" else user_loaders(request.data)  # a bad --data fails before training
    model, inputs, is_trained = load_for_slimming(spec, request.seed, say)
    profile_record = _profile_for_slimming(request, say, progress)
    from slimmer.plan import layer_times

    times = layer_times(profile_record.ops)
    if request.plan_only:
        return _plan(model, inputs, times, request.exact_only)
    return _slim_and_write(request, spec, model, inputs, is_trained, times, data, say, progress)


def slimmable(model: str):
    """The parsed model argument, if the slimmer can work on it.

    Raises:
        profiler.InputError: a .pte or .pt2 (no nn.Module layers left), or a bad argument.
    """
    from profiler.errors import InputError
    from profiler.sources import PT2, PTE, parse_spec

    spec = parse_spec(model)
    if spec.kind == PTE:
        raise InputError(f"{spec.text}: a .pte cannot be slimmed, its PyTorch graph is gone; pass the model it "
                         "came from (file.py:NAME or zoo:NAME) and --profile with its profile")
    if spec.kind == PT2:
        raise InputError(f"{spec.text}: the slimmer's passes work on nn.Module layers, which a .pt2 no longer has; "
                         "pass file.py:NAME or zoo:NAME")
    return spec


@dataclass(frozen=True)
class OptimizeRequest:
    model: str
    outdir: Path
    device: str = "local"
    backend: str = "xnnpack"
    max_accuracy_drop: float = 0.5
    warmup: Optional[int] = None
    iterations: Optional[int] = None
    threads: Optional[int] = None
    data: str = "digits"
    seed: int = 0
    block_steps: int = 40
    end_to_end_steps: int = 40
    min_gain: float = 0.02


@dataclass(frozen=True)
class Optimized:
    before: Profile
    after: Profile
    slim: dict
    report: Path


OPTIMIZE_STAGES = ("profile the model", "slim it", "profile the slimmed model", "write the report")


def optimize(request: OptimizeRequest, say: Callable[[str], None] = lambda text: None,
             progress: Optional[Progress] = None, stage: Optional[Callable[[str], None]] = None) -> Optimized:
    """`rebirth optimize`: profile, slim the worst offenders, profile again, and write before.json,
    slim.json (with slim.pt2/.pte/.etrecord), after.json and report.html into OUTDIR.

    Raises:
        profiler.InputError: the model cannot be slimmed or OUTDIR cannot be written.
        devices.DeviceError: the device failed.
    """
    from profiler.errors import InputError
    from reports.html import write_html

    slimmable(request.model)
    announce = stage or (lambda text: None)
    options = ProfileOptions(request.device, request.backend, request.warmup, request.iterations, request.threads)
    outdir = request.outdir
    try:
        announce(f"1/4 {OPTIMIZE_STAGES[0]}")
        before = profile(request.model, options, progress, stage)
        before.save(outdir / "before.json")
        announce(f"2/4 {OPTIMIZE_STAGES[1]}")
        record = slim(SlimRequest(request.model, outdir, outdir / "before.json", request.backend,
                                  max_accuracy_drop=request.max_accuracy_drop, block_steps=request.block_steps,
                                  end_to_end_steps=request.end_to_end_steps, seed=request.seed, data=request.data,
                                  min_gain=request.min_gain),
                      say, progress)
        announce(f"3/4 {OPTIMIZE_STAGES[2]}")
        after = profile(str(outdir / "slim.pte"), replace(options, etrecord=outdir / "slim.etrecord"), progress, stage)
        after.save(outdir / "after.json")
        announce(f"4/4 {OPTIMIZE_STAGES[3]}")
        report = write_html(outdir / "report.html", before, after, record)
    except OSError as error:
        raise InputError(f"{outdir}: cannot write ({error.strerror or error})") from None
    return Optimized(before, after, record, report)


def _profile_for_slimming(request: SlimRequest, say, progress):
    from profiler.errors import InputError
    from profiler.record import Profile

    if request.profile is None:
        say(f"no --profile: profiling {request.model} on local first")
        return profile(request.model, ProfileOptions(backend=request.backend), progress)
    try:
        return Profile.load(request.profile)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"{request.profile}: not a rebirth profile ({error})") from None


def _plan(model, inputs, times, exact_only: bool):
    from slimmer.graph import trace
    from slimmer.plan import candidates, make_passes

    gm = trace(model)
    return [candidate for candidate, _ in candidates(gm, make_passes(inputs, exact_only), times, inputs)]


def _slim_and_write(request: SlimRequest, spec, model, inputs, is_trained, times, data, say, progress) -> dict:
    import torch

    from profiler.errors import InputError
    from profiler.export import lower
    from profiler.quiet import quiet
    from profiler.record import write_json_atomic
    from slimmer.record import slim_record
    from slimmer.slim import SlimOptions, slim as run_slim

    loaders, messages = (data, []) if data is not None else _digits_for(inputs, say)
    if data is not None and not is_trained:
        is_trained = _learned(model, data, say)
    options = SlimOptions(request.max_accuracy_drop, request.exact_only, request.block_steps,
                          request.end_to_end_steps, request.seed, min_gain=request.min_gain)
    try:
        result = run_slim(model, inputs, times, loaders, is_trained, options, say, progress)
    except (torch.fx.proxy.TraceError, TypeError, NotImplementedError) as error:
        raise InputError(f"{spec.text}: the slimmer cannot trace this model ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}); it was left as it is") from None
    try:
        request.outdir.mkdir(parents=True, exist_ok=True)
        with quiet():
            exported = torch.export.export(result.model, inputs)
            torch.export.save(exported, str(request.outdir / "slim.pt2"))
            program = lower(exported, request.backend)
            (request.outdir / "slim.pte").write_bytes(program.buffer)
            program.get_etrecord().save(str(request.outdir / "slim.etrecord"))
        record = slim_record(result, spec.text, request.backend, str(request.profile) if request.profile else None,
                             messages)
        write_json_atomic(request.outdir / "slim.json", record)
    except OSError as error:
        raise InputError(f"{request.outdir}: cannot write the slimmed model ({error.strerror or error})") from None
    return record


def _learned(model, loaders, say) -> bool:
    """Whether ``model`` learned the user's task: held-out top-1 clearly above chance (by half of it,
    and by three standard deviations of a guesser's score on that many samples)."""
    from slimmer.train import evaluate

    accuracy = evaluate(model, loaders.held_out)
    chance = 1.0 / max(1, loaders.classes)
    spread = (chance * (1 - chance) / max(1, accuracy.samples)) ** 0.5
    learned = accuracy.top1 > 100 * (chance + max(0.5 * chance, 3 * spread))
    if not learned:
        say(f"the model scores {accuracy.top1:.1f}% top-1 on {loaders.name}, about chance ({100 * chance:.1f}%): "
            "merges are judged by agreement with its predictions instead")
    return learned


def _digits_for(inputs, say):
    shape = tuple(inputs[0].shape) if len(inputs) == 1 else ()
    if len(shape) == 4 and shape[1] == 3 and shape[2] == shape[3]:
        from slimmer.data import digits

        return digits(shape[2]), []
    message = (f"no data set fits inputs of shape {shape}: only exact merges were applied "
               "(approximate ones need data to learn from)")
    say(message)
    return None, [message]
