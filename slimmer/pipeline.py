"""What `rebirth slim` and `rebirth optimize` ask of the slimmer: plan the merges a profile makes worth
it, slim a model and write what came out, or do the whole pipeline (profile, slim, profile again)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rebirth.contract.errors import InputError
from rebirth.contract.paired import Budget, PairedComparison, Question
from rebirth.contract.profile import Profile
from rebirth.contract.slim import TOP1, PlannedMerge, SlimRecord
from rebirth.devices import ProgressCallback
from rebirth.models import PT2, PTE, ModelSpec, parse_spec
from rebirth.profiler import ProfileOptions
from rebirth.profiler.measure import profile

Say = Callable[[str], None]
Stage = Callable[[str], None]


def _quiet(text: str) -> None:
    """A ``say`` that says nothing."""


@dataclass(frozen=True)
class SlimRequest:
    model: str
    outdir: Path
    profile: Optional[Path] = None
    """The model's profile (rebirth-profile --json); None: profile it on local first."""
    backend: str = "xnnpack"
    exact_only: bool = False
    max_accuracy_drop: float = 0.5
    block_steps: int = 40
    end_to_end_steps: int = 40
    seed: int = 0
    data: str = "digits"
    """``digits``, or ``file.py:NAME`` / ``package.module:NAME`` returning (train, held_out) DataLoaders."""
    min_gain: float = 0.02
    """Fraction of the measured time a learned merge must save."""
    quantize: Optional[str] = None
    """``int8``: quantize as the last step, within the accuracy budget (``slimmer.quantize``)."""
    decompose: bool = False
    """Low-rank decomposition after the merges (``slimmer.passes.lowrank``)."""
    reduce_channels: bool = False
    """Channel reduction after the merges, before any decomposition (``slimmer.passes.channels``)."""


def slimmable(model: str) -> ModelSpec:
    """The parsed model argument, if the slimmer can work on it.

    Raises:
        InputError: a .pte or .pt2 (no nn.Module layers left), or a bad argument.
    """
    spec = parse_spec(model)
    if spec.kind == PTE:
        raise InputError(f"{spec.text}: a .pte cannot be slimmed, its PyTorch graph is gone; pass the model it "
                         "came from (file.py:NAME or zoo:NAME) and --profile with its profile")
    if spec.kind == PT2:
        raise InputError(f"{spec.text}: a .pt2 cannot be slimmed, its layers are gone (torch.export.unflatten gives "
                         "back the module tree, but each layer as aten calls, not an nn.Conv2d the passes can "
                         "rewrite and retrain); pass the model it came from as file.py:NAME")
    return spec


def plan_merges(request: SlimRequest, say: Say = _quiet,
                progress: Optional[ProgressCallback] = None) -> list[PlannedMerge]:
    """`rebirth slim --plan`: every merge the passes find, with what the profile says it saves, best first.

    Raises:
        InputError: a .pte or .pt2, a bad model, or a bad profile.
    """
    from rebirth.slimmer.graph import trace
    from rebirth.slimmer.plan import candidates, layer_times, make_passes

    spec = slimmable(request.model)
    model, inputs, _ = _load(spec, request.seed, say)
    times = layer_times(_profile_for(request, say, progress).ops)
    found = candidates(trace(model), make_passes(inputs, request.exact_only, request.decompose,
                                                     request.reduce_channels), times, inputs)
    return [candidate.record() for candidate, _ in found]


def slim_model(request: SlimRequest, say: Say = _quiet, progress: Optional[ProgressCallback] = None) -> SlimRecord:
    """`rebirth slim`: slim the model with its profile, and write slim.pt2, slim.pte, slim.etrecord and
    slim.json into ``request.outdir``.

    Raises:
        InputError: a .pte or .pt2, a bad model, profile or --data, a model the slimmer cannot trace, or an
            OUTDIR that cannot be written.
    """
    from rebirth.slimmer.data import user_loaders
    from rebirth.slimmer.plan import layer_times

    spec = slimmable(request.model)
    _check_quantize(request.quantize, request.backend)
    data = None if request.data == "digits" else user_loaders(request.data)  # a bad --data fails before training
    model, inputs, trained = _load(spec, request.seed, say)
    times = layer_times(_profile_for(request, say, progress).ops)
    return _slim_and_write(request, spec, model, inputs, trained, times, data, say, progress)


def _check_quantize(scheme: Optional[str], backend: str) -> None:
    """Raises InputError when ``scheme`` cannot be made for ``backend``."""
    if scheme and backend != "xnnpack":
        raise InputError(f"--quantize {scheme} makes a program for XNNPACK (its quantizer and int8 kernels); "
                         f"drop --backend {backend} or --quantize")


def _load(spec: ModelSpec, seed: int, say: Say):
    """``(model, example_inputs, trained)``: zoo networks come with their digits-trained weights where
    rebirth trains them; other models as they are."""
    from rebirth.models import ZOO, import_heavy, load_python

    import_heavy()
    if spec.kind == ZOO:
        from rebirth.slimmer.weights import trained

        assert spec.name is not None
        found = trained(spec.name, seed, say)
        if found is not None:
            return found[0], found[1], True
        say(f"zoo:{spec.name} has no trained weights (rebirth trains the -small variants)")
    model, inputs = load_python(spec)
    return model, inputs, False


def _profile_for(request: SlimRequest, say: Say, progress: Optional[ProgressCallback]) -> Profile:
    if request.profile is None:
        say(f"no --profile: profiling {request.model} on local first")
        return profile(request.model, ProfileOptions(backend=request.backend), progress)
    return Profile.load(request.profile)


def _slim_and_write(request: SlimRequest, spec: ModelSpec, model, inputs, trained: bool, times: dict[str, float],
                    data, say: Say, progress: Optional[ProgressCallback]) -> SlimRecord:
    import torch

    from rebirth.contract.quiet import quiet
    from rebirth.models import write_program
    from rebirth.slimmer.policy import digits_for, learned
    from rebirth.slimmer.record import slim_record
    from rebirth.slimmer.slim import SlimOptions, slim

    loaders, messages = (data, []) if data is not None else digits_for(inputs, say)
    if data is not None and not trained:
        trained = learned(model, data, say)
    options = SlimOptions(request.max_accuracy_drop, request.exact_only, request.block_steps,
                          request.end_to_end_steps, request.seed, min_gain=request.min_gain, quantize=request.quantize,
                          decompose=request.decompose, reduce_channels=request.reduce_channels)
    try:
        result = slim(model, inputs, times, loaders, trained, options, say, progress)
    except (torch.fx.proxy.TraceError, TypeError, NotImplementedError) as error:
        raise InputError(f"{spec.text}: the slimmer cannot trace this model ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}); it was left as it is") from None
    record = slim_record(result, spec.text, request.backend, str(request.profile) if request.profile else None,
                         messages)
    try:
        with quiet():
            exported = torch.export.export(result.model, inputs)
        if result.merged is not None:  # each technique's contribution can be measured on its own
            with quiet():
                merged = torch.export.export(result.merged, inputs)
            write_program(merged, request.backend, request.outdir / "slim-merged.pte", spec.text)
        if result.reduced is not None:  # the merges and the channel reduction, before the decomposition
            with quiet():
                reduced = torch.export.export(result.reduced, inputs)
            write_program(reduced, request.backend, request.outdir / "slim-reduced.pte", spec.text)
        if result.quantized is not None:
            record = _write_quantized(request, spec.text, exported, result.quantized, record, result.judge, say)
        else:
            write_program(exported, request.backend, request.outdir / "slim.pte", spec.text, keep_pt2=True)
        record.save(request.outdir / "slim.json")
    except OSError as error:
        raise InputError(f"{request.outdir}: cannot write the slimmed model ({error.strerror or error})") from None
    return record


def _write_quantized(request: SlimRequest, source: str, exported, quantized, record: SlimRecord, judge,
                     say: Say) -> SlimRecord:
    """slim.pte from the int8 program, slim-float.pte beside it (the same merges, not quantized); the float
    program becomes slim.pte when the runtime cannot run the int8 one, or when what it runs is over the
    budget (``judge``, a ``slimmer.slim.Judge``, scores the runtime's held-out outputs)."""
    import dataclasses
    import os

    from rebirth.models import read_pte, write_program
    from rebirth.slimmer.quantize import runtime_outputs, runtime_refusal

    outdir = request.outdir
    write_program(exported, request.backend, outdir / "slim-float.pte", source, keep_pt2=True)
    staged = outdir / ".slim-int8.pte"
    write_program(quantized.program, request.backend, staged, source, keep_pt2=True)
    step = record.quantization
    assert step is not None
    refused = runtime_refusal(staged)
    reason = f"the runtime cannot run the int8 program ({refused}): slim.pte is the float one"
    if not refused and judge is not None:
        ran = judge.score(runtime_outputs(staged, judge.loaders.held_out))
        step = dataclasses.replace(step, runtime_quality=ran)
        if not judge.within(ran):
            refused = reason = (f"as ExecuTorch's runtime runs it, the int8 program scores {ran:.1f} "
                                f"({judge.reference - ran:.2f} points lost, over the {judge.budget} budget; "
                                f"PyTorch's simulation of it: {step.quality_after:.1f}): slim.pte is the float one")
    if refused:
        say(f"not quantized: {reason}")
        step = dataclasses.replace(step, applied=False, reason=reason)
        for suffix in (".pte", ".etrecord", ".pt2"):
            staged.with_suffix(suffix).unlink(missing_ok=True)
        _float_becomes_slim(outdir)
    else:
        step = dataclasses.replace(step, weight_bytes_before=read_pte(outdir / "slim-float.pte").constant_bytes,
                                   weight_bytes_after=read_pte(staged).constant_bytes)
        accuracy = record.accuracy
        if step.runtime_quality is not None and accuracy is not None and accuracy.after is not None \
                and accuracy.metric == TOP1:  # the headline's "after" is what slim.pte scores as it runs
            after = dataclasses.replace(accuracy.after, top1=step.runtime_quality, top5=None)
            record = dataclasses.replace(record, accuracy=dataclasses.replace(accuracy, after=after))
        for suffix in (".pt2", ".etrecord", ".pte"):  # the .pte last, as write_program does
            os.replace(staged.with_suffix(suffix), outdir / f"slim{suffix}")
    return dataclasses.replace(record, quantization=step)


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
    precision: float = 0.03
    """The paired speed-up is measured until its interval is within ± this."""
    max_runs: int = 40
    max_seconds: float = 300.0
    quantize: Optional[str] = None
    decompose: bool = False
    reduce_channels: bool = False


@dataclass(frozen=True)
class Optimized:
    before: Profile
    """The original model's run of median latency among the paired runs."""
    after: Profile
    slim: SlimRecord
    paired: PairedComparison


OPTIMIZE_STAGES = ("profile the model", "slim it", "measure both side by side")


def optimize(request: OptimizeRequest, say: Say = _quiet, progress: Optional[ProgressCallback] = None,
             stage: Optional[Stage] = None) -> Optimized:
    """`rebirth optimize`: profile, slim the worst offenders, then measure the original and the slimmed
    model side by side (alternating runs on the device until the speed-up is known to ``precision``);
    writes plan.json (the profile the merges were ranked by), slim.json (with slim.pt2/.pte/.etrecord),
    before.json and after.json (each side's run of median latency) and comparison.json into OUTDIR.

    Raises:
        InputError: the model cannot be slimmed or OUTDIR cannot be written.
        DeviceError: the device failed.
    """
    slimmable(request.model)
    _check_quantize(request.quantize, request.backend)
    announce = stage or _quiet
    count = len(OPTIMIZE_STAGES) + 1  # the caller writes the report last
    options = ProfileOptions(request.device, request.backend, request.warmup, request.iterations, request.threads)
    outdir = request.outdir
    try:
        announce(f"1/{count} {OPTIMIZE_STAGES[0]}")
        profile(request.model, options, progress, stage).save(outdir / "plan.json")
        announce(f"2/{count} {OPTIMIZE_STAGES[1]}")
        record = slim_model(SlimRequest(request.model, outdir, outdir / "plan.json", request.backend,
                                        max_accuracy_drop=request.max_accuracy_drop, block_steps=request.block_steps,
                                        end_to_end_steps=request.end_to_end_steps, seed=request.seed,
                                        data=request.data, min_gain=request.min_gain,
                                        quantize=request.quantize, decompose=request.decompose,
                                        reduce_channels=request.reduce_channels), say, progress)
        announce(f"3/{count} {OPTIMIZE_STAGES[2]}")
        if record.quantization is not None and record.quantization.applied:
            record = _keep_int8_if_faster(request, options, record, say, progress)
        result = _side_by_side(request, options, progress, stage)
        result.a.save(outdir / "before.json")
        result.b.save(outdir / "after.json")
        result.comparison.save(outdir / "comparison.json")
    except OSError as error:
        raise InputError(f"{outdir}: cannot write ({error.strerror or error})") from None
    return Optimized(result.a, result.b, record, result.comparison)


def _float_becomes_slim(outdir: Path) -> None:
    """slim-float.pte (with its ETRecord and .pt2) becomes slim.pte, in place of the int8 program."""
    import os

    for suffix in (".pte", ".etrecord", ".pt2"):
        (outdir / f"slim{suffix}").unlink(missing_ok=True)
        if (outdir / f"slim-float{suffix}").exists():
            os.replace(outdir / f"slim-float{suffix}", outdir / f"slim{suffix}")


INT8_QUESTION = Question(precision=0.05)
INT8_BUDGET = Budget(max_runs=16, max_seconds=120.0)
"""How long the int8 program is timed against the float one before the side-by-side measurement."""


def _keep_int8_if_faster(request: OptimizeRequest, options: ProfileOptions, record: SlimRecord, say: Say,
                         progress: Optional[ProgressCallback]) -> SlimRecord:
    """int8 is not faster everywhere (memory-bound depthwise layers run slower quantized on XNNPACK): time
    slim-float.pte against the int8 slim.pte on the device, and make the float program slim.pte when the
    int8 one is surely slower there (the speed-up's whole interval below 1)."""
    import dataclasses

    from rebirth.devices import open_device
    from rebirth.profiler import prepare
    from rebirth.profiler.paired import compare_programs

    outdir = request.outdir
    with open_device(options.device) as device:
        floating = prepare(str(outdir / "slim-float.pte"), request.backend, outdir / "slim-float.etrecord")
        int8 = prepare(str(outdir / "slim.pte"), request.backend, outdir / "slim.etrecord")
        paired = compare_programs(floating, int8, device, options, INT8_QUESTION, INT8_BUDGET, progress)
    result = paired.comparison
    low, high = result.speedup_interval
    ran = f"{result.speedup:.2f}x the float program's speed (95% CI {low:.2f}-{high:.2f}x, {len(result.runs)} runs)"
    step = record.quantization
    assert step is not None
    if high >= 1.0:
        say(f"int8 on {options.device}: {ran}: kept")
        return record
    reason = f"on {options.device} the int8 program ran {ran}: slim.pte is the float one"
    say(f"not quantized: {reason}")
    _float_becomes_slim(outdir)
    accuracy = record.accuracy
    if accuracy is not None and accuracy.after is not None and accuracy.metric == TOP1 \
            and step.quality_before is not None:  # the headline's "after" is the float program's again
        accuracy = dataclasses.replace(accuracy, after=dataclasses.replace(accuracy.after, top1=step.quality_before))
    record = dataclasses.replace(record, accuracy=accuracy,
                                 quantization=dataclasses.replace(step, applied=False, reason=reason))
    record.save(outdir / "slim.json")
    return record


def _side_by_side(request: OptimizeRequest, options: ProfileOptions, progress: Optional[ProgressCallback],
                  stage: Optional[Stage]):
    """The original and the slimmed model run alternately on the device until the speed-up is known."""
    from rebirth.devices import open_device
    from rebirth.profiler import prepare
    from rebirth.profiler.paired import compare_programs

    with open_device(options.device) as device:
        original = prepare(request.model, request.backend)
        slimmed = prepare(str(request.outdir / "slim.pte"), request.backend, request.outdir / "slim.etrecord")
        return compare_programs(original, slimmed, device, options, Question(request.precision),
                                Budget(request.max_runs, request.max_seconds), progress, stage)
