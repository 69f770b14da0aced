"""`rebirth profile` (and `rebirth-profile`), `export`, `zoo` and `report`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rebirth.options import BACKENDS, add_etrecord, add_run_settings, add_top


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a .pte, a .pt2, file.py:NAME (returns (model, example_inputs)) or zoo:NAME")
    parser.add_argument("--device", default="local", help="device name (default: local, this host)")
    add_run_settings(parser)
    add_etrecord(parser)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the Profile record here")
    parser.add_argument("--html", type=Path, default=None, metavar="PATH",
                        help="write the profile as a self-contained HTML report here")
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
    report = commands.add_parser(
        "report", help="the before/after report of two profiles (HTML and terminal)",
        description="Compare two Profiles (or show one) in the terminal and as one self-contained HTML file.")
    report.add_argument("before", type=Path, help="the Profile JSON before (or the only one)")
    report.add_argument("after", type=Path, nargs="?", default=None, help="the Profile JSON after")
    report.add_argument("--slim", type=Path, default=None, metavar="SLIM_JSON",
                        help="slim.json of the slimming between them: marks merged and removed layers")
    report.add_argument("-o", "--output", type=Path, default=Path("report.html"), metavar="HTML",
                        help="where to write the report (default: report.html)")
    add_top(report)
    report.set_defaults(handler=cmd_report)


def cmd_profile(args: argparse.Namespace) -> int:
    from profiler import ProfileOptions, profile
    from rebirth.progress import ProgressView

    options = ProfileOptions(args.device, args.backend, args.warmup, args.iterations, args.threads, args.etrecord)
    with ProgressView(enabled=not args.quiet) as view:
        result = profile(args.model, options, progress=view.update, stage=view.stage)
    if args.json:
        save_profile(result, args.json)
    if args.html:
        from reports import write_report

        write_report(args.html, result)
    if args.quiet:
        for warning in result.warnings:
            print(f"rebirth: warning: {warning}", file=sys.stderr)
        return 0
    from reports import render_profile

    render_profile(result, top=args.top)
    if args.json:
        print(f"profile written to {args.json}")
    if args.html:
        print(f"report written to {args.html}")
    return 0


def save_profile(result, path: Path) -> None:
    """Write the Profile JSON; a path that cannot be written is the user's error."""
    from contract import InputError

    try:
        result.save(path)
    except OSError as error:
        raise InputError(f"{path}: cannot write the profile ({error.strerror or error})") from None


def cmd_export(args: argparse.Namespace) -> int:
    from models import export_model

    exported = export_model(args.model, args.backend, args.output)
    print(f"wrote {exported.pte} and {exported.etrecord}")
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from models import ZOO_ENTRIES

    for name, entry in sorted(ZOO_ENTRIES.items()):
        print(f"zoo:{name:<20} {entry.input_size:>3} px  {entry.description}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from contract import Profile, SlimRecord
    from reports import render_comparison, render_profile, write_report

    before = Profile.load(args.before)
    after = Profile.load(args.after) if args.after else None
    slim = SlimRecord.load(args.slim) if args.slim else None
    write_report(args.output, before, after, slim)
    if after is not None:
        render_comparison(before, after, slim, top=args.top)
    else:
        render_profile(before, top=args.top)
    print(f"report written to {args.output}")
    return 0
