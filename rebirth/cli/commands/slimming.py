"""`rebirth slim` and `rebirth optimize`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rebirth.cli.options import BACKENDS, add_budget, add_run_settings, add_trace, non_negative, thermal_options

if TYPE_CHECKING:
    from rebirth.contract.slim import SlimRecord
    from rebirth.slimmer import SlimOptions


def add_slimming_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-accuracy-drop", type=float, default=0.5, metavar="POINTS",
                        help="held-out top-1 points all the techniques together may cost; for an untrained "
                             "model, or one predicting under half of the classes, points of output fidelity "
                             "(100 minus the logits' relative error, in %%) (default: 0.5)")
    parser.add_argument("--confidence", type=_confidence, default=95.0, metavar="PERCENT",
                        help="how sure a decision on held-out top-1 must be that a step is within the budget: it is "
                             "kept only when the one-sided upper bound of what it loses, at this confidence, is "
                             "(default: 95)")
    parser.add_argument("--skip", type=_techniques, default=(), metavar="TECH[,TECH...]",
                        help="techniques not to run: merges, reduce_channels, low_rank, int8 (default: none; every "
                             "technique is considered and the budget shared across them by what each buys per "
                             "point; int8 only for XNNPACK)")
    parser.add_argument("--quantize", choices=("int8",), default=None,
                        help="the default now (--skip int8 turns it off)")
    parser.add_argument("--decompose", action="store_true", help="the default now (--skip low_rank turns it off)")
    parser.add_argument("--qat-steps", type=non_negative, default=200, metavar="N",
                        help="where post-training int8 is over the accuracy budget, train in int8 "
                             "(quantization-aware, against the original's logits) for at most N batches, stopping "
                             "once it is within; 0: post-training only (default: %(default)s)")
    parser.add_argument("--reduce-channels", action="store_true",
                        help="the default now (--skip reduce_channels turns it off)")
    parser.add_argument("--block-steps", type=non_negative, default=40,
                        help="fine-tuning steps for each regenerated layer (default: 40)")
    parser.add_argument("--end-to-end-steps", type=non_negative, default=40,
                        help="steps of whole-model fine-tuning (default: 40)")
    parser.add_argument("--min-gain", type=float, default=2.0, metavar="PERCENT",
                        help="a learned merge must save this share of the measured time, and a compression "
                             "step this share of the model's multiply-accumulates, to be worth its fine-tuning "
                             "(default: 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default="digits", metavar="digits|file.py:NAME|module:NAME",
                        help="fine-tuning and held-out data: the built-in digits, or a function returning "
                             "(train, held_out) torch DataLoaders of (images, labels)")


def register(commands) -> None:
    slim = commands.add_parser(
        "slim", help="merge the non-tensor layers the profile found costly into their neighbours",
        description="DeepRebirth slimming: rank merges by the time the profile measured, apply the best first, "
        "fine-tune what each regenerates, stop at the accuracy budget.")
    slim.add_argument("model", help="file.py:NAME or zoo:NAME (a .pte has no graph left to slim)")
    slim.add_argument("--profile", type=Path, default=None,
                      help="the model's profile (rebirth-profile --json); default: profile on local first")
    slim.add_argument("-o", "--output", type=Path, default=None, metavar="OUTDIR",
                      help="writes slim.pt2, slim.pte, slim.etrecord and slim.json here")
    slim.add_argument("--plan", nargs="?", const=True, default=None, metavar="FILE",
                      help="alone: print the ranked offers and change nothing; with a slim.json (or its folder): "
                           "replay the steps that run kept, in its order, each judged again")
    slim.add_argument("--exact-only", action="store_true",
                      help="only merges that keep outputs equal (the other techniques still run: --skip them)")
    slim.add_argument("--backend", choices=BACKENDS, default="xnnpack")
    add_slimming_arguments(slim)
    slim.set_defaults(handler=cmd_slim)
    optimize = commands.add_parser(
        "optimize", help="profile, slim the worst offenders, profile again, and write the before/after report",
        description="The whole pipeline: profile MODEL on the device, slim it with that profile, profile the slimmed "
                    "model, and write before.json, slim.json (and slim.pt2/.pte/.etrecord), after.json and "
                    "report.html into OUTDIR.")
    optimize.add_argument("model", help="file.py:NAME or zoo:NAME")
    optimize.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR")
    optimize.add_argument("--device", default="local", help="device name (default: local, this host)")
    add_run_settings(optimize, device_backend=False)
    optimize.add_argument("--precision", type=float, default=3.0, metavar="PERCENT",
                          help="measure the original and the slimmed model side by side until the speed-up's 95%% "
                               "interval is within ±PERCENT (default: 3)")
    add_budget(optimize, runs=40, seconds=300)
    add_trace(optimize, "the traced before and after runs (one process each)")
    optimize.add_argument("--plan", default=None, metavar="FILE",
                          help="replay the steps a slim.json (or its folder) kept, in its order, each judged again, "
                               "instead of the steps this profile ranks best")
    add_slimming_arguments(optimize)
    optimize.set_defaults(handler=cmd_optimize)


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 50 <= value < 100:
        raise argparse.ArgumentTypeError(f"{text}: a percentage from 50 to below 100")
    return value


def _techniques(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


DEFAULTS_NOW = (("quantize", "--quantize int8", "int8"), ("decompose", "--decompose", "low_rank"),
                ("reduce_channels", "--reduce-channels", "reduce_channels"))
"""Flags that turned a technique on before every technique ran by default: (argument, flag, technique)."""


def slim_options(args: argparse.Namespace) -> SlimOptions:
    """The ``SlimOptions`` the slimming arguments ask for; a flag of a technique that is the default now says so.

    Raises:
        InputError: ``--quantize int8`` asked for with a backend other than XNNPACK.
    """
    from rebirth.contract import InputError
    from rebirth.slimmer import SlimOptions

    if args.quantize and args.backend != "xnnpack":
        raise InputError(f"--quantize {args.quantize} makes a program for XNNPACK (its quantizer and int8 "
                         f"kernels); drop --backend {args.backend} or --quantize")
    for argument, flag, technique in DEFAULTS_NOW:
        if getattr(args, argument):
            print(f"note: {flag} is the default now (every technique runs; --skip {technique} turns it off)",
                  file=sys.stderr)
    replay = None
    if isinstance(getattr(args, "plan", None), str):
        from rebirth.slimmer.replay import load_replay

        replay = load_replay(args.plan)
    return SlimOptions(backend=args.backend, max_accuracy_drop=args.max_accuracy_drop, confidence=args.confidence / 100,
                       replay=replay,
                       exact_only=getattr(args, "exact_only", False), block_steps=args.block_steps,
                       end_to_end_steps=args.end_to_end_steps, seed=args.seed, min_gain=args.min_gain / 100,
                       skip=args.skip, qat_steps=args.qat_steps)


def cmd_slim(args: argparse.Namespace) -> int:
    from rebirth.cli.progress import ProgressView
    from rebirth.contract import InputError

    if args.plan is not True and args.output is None:
        raise InputError("-o OUTDIR is needed (or --plan alone to only see the plan)")
    from rebirth.usecases.slimming import SlimRequest, plan_merges, slim_model

    request = SlimRequest(model=args.model, outdir=args.output or Path("."), profile=args.profile, data=args.data,
                          options=slim_options(args))
    with ProgressView() as view:
        if args.plan is True:
            plan = plan_merges(request, say=view.say, progress=view.update)
        else:
            record = slim_model(request, say=view.say, progress=view.update)
    if args.plan is True:
        from rebirth.reports import render_plan

        render_plan(plan)
        return 0
    from rebirth.reports import render_slim

    render_slim(record)
    print(f"wrote {args.output}/{written(record)}")
    return 0


def written(record: SlimRecord) -> str:
    """``slim.pt2, slim.pte, slim.etrecord, slim-merged.pte (the merges alone) and slim.json``: the files of the
    slimmed program, every other program (and what it is), the record; as slim.json lists them."""
    from rebirth.contract.slim import RECORD, SLIM

    names = [file.name for file in record.files if file.role == SLIM]
    names += [f"{file.name} ({file.about})" if file.about else file.name for file in record.programs()
              if file.role != SLIM]
    names += [file.name for file in record.files if file.role == RECORD]
    return f"{', '.join(names[:-1])} and {names[-1]}"


def cmd_optimize(args: argparse.Namespace) -> int:
    from rebirth.cli.progress import ProgressView
    from rebirth.cli.tracing import timelines_for, write_trace_file
    from rebirth.reports import render_comparison
    from rebirth.usecases.slimming import OptimizeRequest, optimize

    request = OptimizeRequest(model=args.model, outdir=args.output, device=args.device, warmup=args.warmup,
                              iterations=args.iterations, threads=args.threads, data=args.data,
                              precision=args.precision / 100, max_runs=args.max_runs, max_seconds=args.max_time,
                              options=slim_options(args), thermal=thermal_options(args))
    timelines = timelines_for(args)
    with ProgressView() as view:
        result = optimize(request, say=view.say, progress=view.update, stage=view.stage, timelines=timelines)
    render_comparison(result.before, result.after, result.slim, paired=result.paired)
    print(f"speed-up measured side by side: {result.paired.outcome}: {result.paired.reason}")
    print(f"wrote {args.output}/plan.json, slim.json, before.json, after.json, comparison.json and report.html")
    write_trace_file(args, timelines)
    return 0
