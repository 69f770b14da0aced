"""`rebirth slim` and `rebirth optimize`: plan the steps a profile makes worth it, slim a model and write what
came out, or the whole pipeline (profile, slim, measure the original and the slimmed model side by side, report).

Here the model is loaded, profiled and timed on its device; ``rebirth.slimmer`` slims it. Importing this module
imports torch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from rebirth.contract.errors import InputError
from rebirth.contract.paired import Budget, PairedComparison, Question
from rebirth.contract.profile import Profile
from rebirth.contract.slim import JSON, RECORD, OutputFile, PlannedMerge, SlimRecord
from rebirth.devices import ProgressCallback
from rebirth.profiler import ProfileOptions, Timelines
from rebirth.reports import write_report
from rebirth.slimmer import (
    DeviceTimer,
    SlimOptions,
    check_options,
    data_for,
    layer_times,
    load_model,
    plan_offers,
    slim,
    slim_record,
    slimmable,
    user_data,
    write_programs,
)
from rebirth.usecases.profiling import profile

Say = Callable[[str], None]
Stage = Callable[[str], None]


def _quiet(text: str) -> None:
    """A ``say`` that says nothing."""


@dataclass(frozen=True, kw_only=True)
class SlimRequest:
    model: str
    outdir: Path
    profile: Optional[Path] = None
    """The model's profile (rebirth-profile --json); None: profile it on local first."""
    data: str = "digits"
    """``digits``, or ``file.py:NAME`` / ``package.module:NAME`` returning (train, held_out) DataLoaders."""
    options: SlimOptions = field(default_factory=SlimOptions)


@dataclass(frozen=True, kw_only=True)
class OptimizeRequest:
    model: str
    outdir: Path
    device: str = "local"
    warmup: Optional[int] = None
    iterations: Optional[int] = None
    threads: Optional[int] = None
    thermal: dict = field(default_factory=dict)
    """The thermal gate's options (``ProfileOptions``' cool_below_c, cool_wait_s, thermal_gate)."""
    data: str = "digits"
    precision: float = 0.03
    """The paired speed-up is measured until its interval is within ± this."""
    max_runs: int = 40
    max_seconds: float = 300.0
    options: SlimOptions = field(default_factory=SlimOptions)


@dataclass(frozen=True)
class Optimized:
    before: Profile
    """The original model's run of median latency among the paired runs."""
    after: Profile
    slim: SlimRecord
    paired: PairedComparison


OPTIMIZE_STAGES = ("profile the model", "slim it", "measure both side by side", "write the report")


def plan_merges(request: SlimRequest, *, say: Say = _quiet,
                progress: Optional[ProgressCallback] = None) -> list[PlannedMerge]:
    """`rebirth slim --plan`: every step the options ask for offers what it could do, with what the profile says
    each saves, best first.

    Raises:
        InputError: a .pte or .pt2, a bad model, or a bad profile.
    """
    spec = slimmable(request.model)
    check_options(request.options)
    model, inputs, _ = load_model(spec, request.options.seed, say)
    times = layer_times(_profile_for(request, say, progress).ops)
    return plan_offers(model, inputs, times, request.options)


def slim_model(request: SlimRequest, *, say: Say = _quiet, progress: Optional[ProgressCallback] = None,
               timer: Optional[DeviceTimer] = None) -> SlimRecord:
    """`rebirth slim`: slim the model with its profile, and write the programs (slim.pte with its .pt2 and
    .etrecord, and those the steps made beside it) and slim.json into ``request.outdir``; slim.json lists them.

    Args:
        timer: times two programs on the device the model is slimmed for (``optimize`` gives its device).

    Raises:
        InputError: a .pte or .pt2, a bad model, profile or --data, a model the slimmer cannot trace, or an
            OUTDIR that cannot be written.
    """
    spec = slimmable(request.model)
    check_options(request.options)
    data = user_data(request.data)  # a bad --data fails before training
    model, inputs, trained = load_model(spec, request.options.seed, say)
    times = layer_times(_profile_for(request, say, progress).ops)
    return _slim_and_write(request, spec.text, model, inputs, trained, times, data, say, progress, timer)


def _profile_for(request: SlimRequest, say: Say, progress: Optional[ProgressCallback]) -> Profile:
    if request.profile is None:
        say(f"no --profile: profiling {request.model} on local first")
        return profile(request.model, ProfileOptions(backend=request.options.backend), progress=progress)
    return Profile.load(request.profile)


def _slim_and_write(request: SlimRequest, source: str, model, inputs: tuple, trained: bool, times: dict[str, float],
                    data, say: Say, progress: Optional[ProgressCallback],
                    timer: Optional[DeviceTimer]) -> SlimRecord:
    options = request.options
    loaders, trained, messages = data_for(model, inputs, trained, data, say)
    try:
        result = slim(model, inputs, times, loaders, trained, options, say, progress, timer)
    except (torch.fx.proxy.TraceError, TypeError, NotImplementedError) as error:
        raise InputError(f"{source}: the slimmer cannot trace this model ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}); it was left as it is") from None
    try:
        files = write_programs(result.programs, inputs, options.backend, request.outdir, source, result.lowering)
        record = slim_record(result, source, options.backend, str(request.profile) if request.profile else None,
                             messages, files + (OutputFile("slim.json", RECORD, JSON),))
        record.save(request.outdir / "slim.json")
    except OSError as error:
        raise InputError(f"{request.outdir}: cannot write the slimmed model ({error.strerror or error})") from None
    finally:
        if result.lowering is not None:
            result.lowering.close()
    return record


def optimize(request: OptimizeRequest, *, say: Say = _quiet, progress: Optional[ProgressCallback] = None,
             stage: Optional[Stage] = None, timelines: Optional[Timelines] = None) -> Optimized:
    """`rebirth optimize`: profile, slim the worst offenders, then measure the original and the slimmed
    model side by side (alternating runs on the device until the speed-up is known to ``precision``), and
    write the report; writes plan.json (the profile the steps were ranked by), slim.json (with the programs
    it lists), before.json and after.json (each side's run of median latency), comparison.json and report.html
    into OUTDIR. An int8 program is kept only where the device does not run it slower than the float one.
    The timelines of the traced before and after runs go into ``timelines`` when given.

    Raises:
        InputError: the model cannot be slimmed or OUTDIR cannot be written.
        DeviceError: the device failed.
    """
    slimmable(request.model)
    check_options(request.options)
    announce = stage or _quiet
    count = len(OPTIMIZE_STAGES)
    options = ProfileOptions(request.device, request.options.backend, request.warmup, request.iterations,
                             request.threads, **request.thermal)
    outdir = request.outdir
    try:
        announce(f"1/{count} {OPTIMIZE_STAGES[0]}")
        profile(request.model, options, progress=progress, stage=stage).save(outdir / "plan.json")
        announce(f"2/{count} {OPTIMIZE_STAGES[1]}")
        record = slim_model(SlimRequest(model=request.model, outdir=outdir, profile=outdir / "plan.json",
                                        data=request.data, options=request.options),
                            say=say, progress=progress, timer=_device_timer(options, progress))
        announce(f"3/{count} {OPTIMIZE_STAGES[2]}")
        result = _side_by_side(request, options, progress, stage, timelines)
        result.a.save(outdir / "before.json")
        result.b.save(outdir / "after.json")
        result.comparison.save(outdir / "comparison.json")
    except OSError as error:
        raise InputError(f"{outdir}: cannot write ({error.strerror or error})") from None
    announce(f"4/{count} {OPTIMIZE_STAGES[3]}")
    write_report(outdir / "report.html", result.a, result.b, record, result.comparison,
                 timelines=timelines.items if timelines else ())
    return Optimized(result.a, result.b, record, result.comparison)


def _device_timer(options: ProfileOptions, progress: Optional[ProgressCallback]) -> DeviceTimer:
    """How the slimmer times two of its programs on the device being optimized for."""

    def compare(a: Path, b: Path, question: Question, budget: Budget) -> PairedComparison:
        from rebirth.devices import open_device
        from rebirth.profiler import prepare
        from rebirth.profiler.paired import compare_programs

        with open_device(options.device) as device:
            first = prepare(str(a), options.backend_on(device.defaults), a.with_suffix(".etrecord"))
            second = prepare(str(b), options.backend_on(device.defaults), b.with_suffix(".etrecord"))
            return compare_programs(first, second, device, options, question, budget, progress).comparison

    return DeviceTimer(options.device, compare)


def _side_by_side(request: OptimizeRequest, options: ProfileOptions, progress: Optional[ProgressCallback],
                  stage: Optional[Stage], timelines: Optional[Timelines]):
    """The original and the slimmed model run alternately on the device until the speed-up is known."""
    from rebirth.devices import open_device
    from rebirth.profiler import prepare
    from rebirth.profiler.paired import compare_programs

    with open_device(options.device) as device:
        backend = options.backend_on(device.defaults)
        original = prepare(request.model, backend)
        slimmed = prepare(str(request.outdir / "slim.pte"), backend, request.outdir / "slim.etrecord")
        return compare_programs(original, slimmed, device, options, Question(request.precision),
                                Budget(request.max_runs, request.max_seconds), progress, stage, timelines=timelines,
                                roles=("before", "after"))
