"""`rebirth profile` (and `rebirth-profile`), `export`, `zoo` and `report`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rebirth.cli.options import (
    BACKENDS,
    add_budget,
    add_cold,
    add_etrecord,
    add_run_settings,
    add_top,
    add_trace,
    cold_settings,
    thermal_options,
)


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a .pte, a .pt2, file.py:NAME (returns (model, example_inputs)) or zoo:NAME")
    parser.add_argument("--device", default="local", help="device name (default: local, this host)")
    add_run_settings(parser)
    add_cold(parser)
    add_etrecord(parser)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the Profile record here")
    parser.add_argument("--html", type=Path, default=None, metavar="PATH",
                        help="write the profile as a self-contained HTML report here")
    add_trace(parser)
    add_top(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no terminal report, no progress")
    parser.set_defaults(handler=cmd_profile)


def register(commands) -> None:
    profile = commands.add_parser("profile", help="profile a model per layer on a device",
                                  description="Profile a model per layer on a device.")
    add_profile_arguments(profile)
    export = commands.add_parser("export", help="lower a model to a .pte and its .etrecord",
                                 description="Lower a model to a .pte and write its .etrecord beside it.")
    export.add_argument("model", help="a .pt2, file.py:NAME or zoo:NAME")
    export.add_argument("--backend", choices=BACKENDS, default="xnnpack")
    export.add_argument("-o", "--output", type=Path, required=True, help="the .pte to write")
    export.set_defaults(handler=cmd_export)
    zoo = commands.add_parser("zoo", help="list the model zoo", description="List the model zoo.")
    zoo.set_defaults(handler=cmd_zoo)
    compare = commands.add_parser(
        "compare", help="measure two models side by side on one device (paired, until decisive)",
        description="Run A and B alternately on the device (A B, B A, ...), same settings, so that load, drift and "
                    "heat hit both alike, adding pairs until the latency ratio is known to --precision or the "
                    "budget is spent (then: undecided, exit 3). Prints the paired speed-up of B over A, its "
                    "interval and the memory of both.")
    compare.add_argument("a", help="model A, the baseline (a .pte, a .pt2, file.py:NAME or zoo:NAME)")
    compare.add_argument("b", help="model B, the candidate")
    compare.add_argument("--device", default="local", help="device name (default: local, this host)")
    add_run_settings(compare)
    add_budget(compare)
    compare.add_argument("--precision", type=float, default=2.0, metavar="PERCENT",
                         help="stop once the latency ratio's 95%% interval is within ±PERCENT (default: 2)")
    compare.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the comparison record here")
    compare.add_argument("--html", type=Path, default=None, metavar="PATH", help="write the report of A and B here")
    add_trace(compare, "the traced run of A and of B (one process each)")
    add_top(compare)
    compare.set_defaults(handler=cmd_compare)
    report = commands.add_parser(
        "report", help="the before/after report of two profiles (HTML and terminal)",
        description="Compare two Profiles (or show one) in the terminal and as one self-contained HTML file.")
    report.add_argument("before", type=Path, help="the Profile JSON before (or the only one)")
    report.add_argument("after", type=Path, nargs="?", default=None, help="the Profile JSON after")
    report.add_argument("--slim", type=Path, default=None, metavar="SLIM_JSON",
                        help="slim.json of the slimming between them: marks merged and removed layers")
    report.add_argument("--paired", type=Path, default=None, metavar="COMPARISON_JSON",
                        help="comparison.json of the two measured side by side (rebirth compare --json, or "
                             "rebirth optimize): the speed-up comes from it")
    report.add_argument("-o", "--output", type=Path, default=Path("report.html"), metavar="HTML",
                        help="where to write the report (default: report.html)")
    add_top(report)
    report.set_defaults(handler=cmd_report)


def cmd_profile(args: argparse.Namespace) -> int:
    from rebirth.cli.progress import ProgressView
    from rebirth.cli.tracing import timelines_for, write_trace_file
    from rebirth.profiler import ProfileOptions
    from rebirth.usecases.profiling import profile

    cold, cold_executions = cold_settings(args)
    options = ProfileOptions(args.device, args.backend, args.warmup, args.iterations, args.threads, args.etrecord,
                             cold=cold, cold_executions=cold_executions, **thermal_options(args))
    timelines = timelines_for(args)
    with ProgressView(enabled=not args.quiet) as view:
        result = profile(args.model, options, progress=view.update, stage=view.stage, timelines=timelines)
    if args.json:
        save_profile(result, args.json)
    if args.html:
        from rebirth.reports import write_report

        write_report(args.html, result, timelines=timelines.items if timelines else ())
    write_trace_file(args, timelines)
    if args.quiet:
        for warning in result.warnings:
            print(f"rebirth: warning: {warning}", file=sys.stderr)
        return 0
    from rebirth.reports import render_profile

    render_profile(result, top=args.top)
    if args.json:
        print(f"profile written to {args.json}")
    if args.html:
        print(f"report written to {args.html}")
    return 0


def save_profile(result, path: Path, what: str = "profile") -> None:
    """Write a record's JSON (a Profile, a comparison); a path that cannot be written is the user's error."""
    from rebirth.contract import InputError

    try:
        result.save(path)
    except OSError as error:
        raise InputError(f"{path}: cannot write the {what} ({error.strerror or error})") from None


def cmd_export(args: argparse.Namespace) -> int:
    from rebirth.usecases.profiling import export

    exported = export(args.model, args.output, backend=args.backend)
    print(f"wrote {exported.pte} and {exported.etrecord}")
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from rebirth.models import ZOO_ENTRIES

    for name, entry in sorted(ZOO_ENTRIES.items()):
        print(f"zoo:{name:<20} {entry.input_size:>3} px  {entry.description}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from rebirth.contract import Profile, SlimRecord
    from rebirth.contract.paired import PairedComparison
    from rebirth.reports import render_comparison, render_profile, write_report

    before = Profile.load(args.before)
    after = Profile.load(args.after) if args.after else None
    slim = SlimRecord.load(args.slim) if args.slim else None
    paired = PairedComparison.load(args.paired) if args.paired else None
    write_report(args.output, before, after, slim, paired)
    if after is not None:
        render_comparison(before, after, slim, top=args.top, paired=paired)
    else:
        render_profile(before, top=args.top)
    print(f"report written to {args.output}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from rebirth.cli.progress import ProgressView
    from rebirth.cli.tracing import timelines_for, write_trace_file
    from rebirth.contract import ExitStatus
    from rebirth.contract.paired import Budget, Question
    from rebirth.profiler import ProfileOptions
    from rebirth.reports import render_comparison, write_report
    from rebirth.usecases.profiling import compare

    options = ProfileOptions(args.device, args.backend, args.warmup, args.iterations, args.threads,
                             **thermal_options(args))
    budget = Budget(args.max_runs, args.max_time)
    timelines = timelines_for(args)
    with ProgressView() as view:
        result = compare(args.a, args.b, options, question=Question(args.precision / 100), budget=budget,
                         progress=view.update, stage=view.stage, timelines=timelines)
    paired = result.comparison
    if args.json:
        save_profile(paired, args.json, "comparison")
    if args.html:
        write_report(args.html, result.a, result.b, paired=paired, timelines=timelines.items if timelines else ())
    write_trace_file(args, timelines)
    render_comparison(result.a, result.b, top=args.top, paired=paired)
    print(f"{paired.outcome}: {paired.reason}")
    return ExitStatus.OK if paired.decided else ExitStatus.NO_ANSWER
