"""rebirth's command line. Parses, calls the library, prints. Nothing heavy is imported at
module level, so ``--help`` answers fast.

Exit codes: 0 done, 2 the user's input was wrong, 1 anything else; `farm run` and `regress` use 3
when a device's run failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from rebirth.farm_commands import HANDLERS as FARM_HANDLERS, add_commands as add_farm_commands

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
BACKENDS = ("portable", "xnnpack")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def add_run_settings(parser: argparse.ArgumentParser, whose: str = "the device's") -> None:
    """--backend, --warmup, --iterations and --threads: how a model is lowered and run on a device."""
    parser.add_argument("--backend", choices=BACKENDS, default="xnnpack",
                        help="backend to lower to when MODEL is not a .pte (default: xnnpack)")
    parser.add_argument("--warmup", type=non_negative, default=None,
                        help=f"untimed runs first (default: {whose} in devices.toml, else 3)")
    parser.add_argument("--iterations", type=positive, default=None,
                        help=f"timed runs (default: {whose} in devices.toml, else 20)")
    parser.add_argument("--threads", type=positive, default=None,
                        help=f"runtime threads (default: {whose}; phones: one per big core)")


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a .pte, a .pt2, file.py:NAME (returns (model, example_inputs)) or zoo:NAME")
    parser.add_argument("--device", default="local", help="device name (default: local, this host)")
    add_run_settings(parser)
    parser.add_argument("--etrecord", type=Path, default=None,
                        help="ETRecord of the .pte (default: NAME.etrecord beside NAME.pte)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the Profile record here")
    parser.add_argument("--html", type=Path, default=None, metavar="PATH",
                        help="write the profile as a self-contained HTML report here")
    parser.add_argument("--top", type=positive, default=15, help="rows in the terminal tables (default: 15)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no terminal report, no progress")


def add_slimming_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-accuracy-drop", type=float, default=0.5, metavar="POINTS",
                        help="held-out top-1 points (agreement points for an untrained model) the merges may "
                             "cost (default: 0.5)")
    parser.add_argument("--block-steps", type=non_negative, default=40,
                        help="fine-tuning steps for each regenerated layer (default: 40)")
    parser.add_argument("--end-to-end-steps", type=non_negative, default=40,
                        help="steps of whole-model fine-tuning (default: 40)")
    parser.add_argument("--min-gain", type=float, default=2.0, metavar="PERCENT",
                        help="a learned merge must save this share of the measured time, to be worth its "
                             "fine-tuning (default: 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default="digits", metavar="digits|file.py:NAME|module:NAME",
                        help="fine-tuning and held-out data: the built-in digits, or a function returning "
                             "(train, held_out) torch DataLoaders of (images, labels)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rebirth", description="Profile and slim neural networks on phones.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    profile = commands.add_parser("profile", help="profile a model per layer on a device",
                                  description="Profile a model per layer on a device.")
    add_profile_arguments(profile)
    export = commands.add_parser("export", help="lower a model to a .pte and its .etrecord",
                                 description="Lower a model to a .pte and write its .etrecord beside it.")
    export.add_argument("model", help="a .pt2, file.py:NAME or zoo:NAME")
    export.add_argument("--backend", choices=BACKENDS, default="xnnpack")
    export.add_argument("-o", "--output", type=Path, required=True, help="the .pte to write")
    commands.add_parser("zoo", help="list the model zoo", description="List the model zoo.")
    slim = commands.add_parser(
        "slim", help="merge the non-tensor layers the profile found costly into their neighbours",
        description="DeepRebirth slimming: rank merges by the time the profile measured, apply the best first, "
        "fine-tune what each regenerates, stop at the accuracy budget.")
    slim.add_argument("model", help="file.py:NAME or zoo:NAME (a .pte has no graph left to slim)")
    slim.add_argument("--profile", type=Path, default=None,
                      help="the model's profile (rebirth-profile --json); default: profile on local first")
    slim.add_argument("-o", "--output", type=Path, default=None, metavar="OUTDIR",
                      help="writes slim.pt2, slim.pte, slim.etrecord and slim.json here")
    slim.add_argument("--plan", action="store_true", help="print the ranked merges and change nothing")
    slim.add_argument("--exact-only", action="store_true", help="only merges that keep outputs equal")
    slim.add_argument("--backend", choices=BACKENDS, default="xnnpack")
    add_slimming_arguments(slim)
    optimize = commands.add_parser(
        "optimize", help="profile, slim the worst offenders, profile again, and write the before/after report",
        description="The whole pipeline: profile MODEL on the device, slim it with that profile, profile the slimmed "
                    "model, and write before.json, slim.json (and slim.pt2/.pte/.etrecord), after.json and "
                    "report.html into OUTDIR.")
    optimize.add_argument("model", help="file.py:NAME or zoo:NAME")
    optimize.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR")
    optimize.add_argument("--device", default="local", help="device name (default: local, this host)")
    add_run_settings(optimize)
    add_slimming_arguments(optimize)
    report = commands.add_parser(
        "report", help="the before/after report of two profiles (HTML and terminal)",
        description="Compare two Profiles (or show one) in the terminal and as one self-contained HTML file.")
    report.add_argument("before", type=Path, help="the Profile JSON before (or the only one)")
    report.add_argument("after", type=Path, nargs="?", default=None, help="the Profile JSON after")
    report.add_argument("--slim", type=Path, default=None, metavar="SLIM_JSON",
                        help="slim.json of the slimming between them: marks merged and removed layers")
    report.add_argument("-o", "--output", type=Path, default=Path("report.html"), metavar="HTML",
                        help="where to write the report (default: report.html)")
    report.add_argument("--top", type=positive, default=15, help="rows in the terminal tables (default: 15)")
    devices = commands.add_parser("devices", help="devices and the emulated phone",
                                  description="Devices and the emulated phone.")
    device_commands = devices.add_subparsers(dest="device_command", required=True, metavar="ACTION")
    device_commands.add_parser("list", help="the inventory (devices.toml) and reachable devices, with status",
                               description="List local, the devices of devices.toml with their status, and the "
                               "phones a running adb server knows.")
    info = device_commands.add_parser("info", help="model, SoC, ABI, Android, cores and clocks, temperatures, "
                                      "battery", description="Describe a device.")
    info.add_argument("name", help="a device name (local, or one of devices.toml)")
    check = device_commands.add_parser("check", help="reachable, authorized, runner present and built with the "
                                       "event tracer", description="Check that a device can be profiled.")
    check.add_argument("name", help="a device name (local, or one of devices.toml)")
    check.add_argument("--no-probe", action="store_true",
                       help="skip the probe run that checks the runner writes an ETDump")
    emulate = device_commands.add_parser(
        "emulate", help="start an emulated phone (an adbd on 127.0.0.1) until interrupted",
        description="Start an emulated phone: an adbd on 127.0.0.1 that Debian's adb client can connect to.")
    emulate.add_argument("--port", type=int, default=5555)
    emulate.add_argument("--phone", default="galaxy-s6", help="phone profile (galaxy-s6, pixel-7)")
    emulate.add_argument("--root", type=Path, default=None, help="the phone's file system (default: a temp folder)")
    emulate.add_argument("--auth", action="store_true",
                         help="require RSA authentication (needed to listen beyond loopback)")
    emulate.add_argument("--authorized-keys", type=Path, action="append", default=None, metavar="FILE",
                         help="adbkey.pub-style file of keys to let in with --auth (default: this user's "
                         "~/.android/adbkey.pub)")
    emulate.add_argument("--host", default="127.0.0.1",
                         help="address to listen on (default: 127.0.0.1; anything else needs --auth)")
    add_farm_commands(commands)
    return parser


def profile_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rebirth-profile", description="Profile a model per layer on a device.")
    add_profile_arguments(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args)


def profile_main(argv: Optional[Sequence[str]] = None) -> int:
    args = profile_parser().parse_args(argv)
    args.command = "profile"
    return run(args)


def run(args: argparse.Namespace) -> int:
    handlers = {"profile": cmd_profile, "export": cmd_export, "zoo": cmd_zoo, "devices": cmd_devices,
                "slim": cmd_slim, "optimize": cmd_optimize, "report": cmd_report, **FARM_HANDLERS}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("rebirth: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        code = exit_code_of(error)
        if code is None:
            raise
        print(f"rebirth: error: {error}", file=sys.stderr)
        return code


def exit_code_of(error: Exception) -> Optional[int]:
    """2 for errors the user caused, 1 for device failures, None for bugs (they raise)."""
    from devices.errors import DeviceError, ModelRejectedError, UnknownDeviceError
    from profiler.errors import InputError

    if isinstance(error, (InputError, UnknownDeviceError, ModelRejectedError)):
        return EXIT_USAGE
    if isinstance(error, DeviceError):
        return EXIT_FAILED
    return None


def cmd_profile(args: argparse.Namespace) -> int:
    from rebirth.app import ProfileOptions, profile
    from rebirth.progress import ProgressView

    options = ProfileOptions(args.device, args.backend, args.warmup, args.iterations, args.threads, args.etrecord)
    with ProgressView(enabled=not args.quiet) as view:
        result = profile(args.model, options, progress=view.update, stage=view.stage)
    if args.json:
        save_profile(result, args.json)
    if args.html:
        write_report(args.html, result)
    if not args.quiet:
        from reports.terminal import render_profile

        render_profile(result, top=args.top)
        if args.json:
            print(f"profile written to {args.json}")
        if args.html:
            print(f"report written to {args.html}")
    else:
        for warning in result.warnings:
            print(f"rebirth: warning: {warning}", file=sys.stderr)
    return EXIT_OK


def save_profile(result, path: Path) -> None:
    """Write the Profile JSON; a path that cannot be written is the user's error."""
    from profiler.errors import InputError

    try:
        result.save(path)
    except OSError as error:
        raise InputError(f"{path}: cannot write the profile ({error.strerror or error})") from None


def write_report(path: Path, before, after=None, slim=None) -> None:
    """Write the HTML report; a path that cannot be written is the user's error."""
    from profiler.errors import InputError
    from reports.html import write_html

    try:
        write_html(path, before, after, slim)
    except OSError as error:
        raise InputError(f"{path}: cannot write the report ({error.strerror or error})") from None


def cmd_report(args: argparse.Namespace) -> int:
    from profiler.record import Profile
    from reports.compare import load_slim

    before = Profile.load(args.before)
    after = Profile.load(args.after) if args.after else None
    slim = load_slim(args.slim) if args.slim else None
    write_report(args.output, before, after, slim)
    if after is not None:
        from reports.terminal import render_comparison

        render_comparison(before, after, slim, top=args.top)
    else:
        from reports.terminal import render_profile

        render_profile(before, top=args.top)
    print(f"report written to {args.output}")
    return EXIT_OK


def cmd_optimize(args: argparse.Namespace) -> int:
    from rebirth.app import OptimizeRequest, optimize
    from rebirth.progress import ProgressView
    from reports.terminal import render_comparison

    request = OptimizeRequest(args.model, args.output, args.device, args.backend, args.max_accuracy_drop,
                              args.warmup, args.iterations, args.threads, args.data, args.seed, args.block_steps,
                              args.end_to_end_steps, args.min_gain / 100)
    with ProgressView() as view:
        result = optimize(request, say=lambda text: view.console.print(text, highlight=False, markup=False),
                          progress=view.update, stage=view.stage)
    render_comparison(result.before, result.after, result.slim)
    print(f"wrote {args.output}/before.json, slim.json, after.json and report.html")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from rebirth.app import export

    if args.output.suffix != ".pte":
        print(f"rebirth: error: {args.output}: the output must end in .pte", file=sys.stderr)
        return EXIT_USAGE
    from profiler.errors import InputError

    try:
        exported = export(args.model, args.backend, args.output)
    except OSError as error:
        raise InputError(f"{args.output}: cannot write the export ({error.strerror or error})") from None
    print(f"wrote {exported.pte} and {exported.etrecord}")
    return EXIT_OK


def cmd_slim(args: argparse.Namespace) -> int:
    from rebirth.app import SlimRequest, slim
    from rebirth.progress import ProgressView

    if not args.plan and args.output is None:
        print("rebirth: error: -o OUTDIR is needed (or --plan to only see the plan)", file=sys.stderr)
        return EXIT_USAGE
    request = SlimRequest(args.model, args.output or Path("."), args.profile, args.backend, args.plan,
                          args.exact_only, args.max_accuracy_drop, args.block_steps, args.end_to_end_steps, args.seed,
                          args.data, args.min_gain / 100)
    with ProgressView() as view:
        result = slim(request, say=lambda text: view.console.print(text, highlight=False, markup=False),
                      progress=view.update)
    if args.plan:
        from reports.terminal import render_plan

        render_plan(result)
        return EXIT_OK
    from reports.terminal import render_slim

    render_slim(result)
    print(f"wrote {args.output}/slim.pt2, slim.pte, slim.etrecord and slim.json")
    return EXIT_OK


def cmd_zoo(args: argparse.Namespace) -> int:
    from profiler.zoo import ZOO

    for name, entry in sorted(ZOO.items()):
        print(f"zoo:{name:<20} {entry.input_size:>3} px  {entry.description}")
    return EXIT_OK


def cmd_devices(args: argparse.Namespace) -> int:
    handlers = {"list": cmd_devices_list, "info": cmd_devices_info, "check": cmd_devices_check,
                "emulate": cmd_devices_emulate}
    return handlers[args.device_command](args)


def cmd_devices_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from devices.inventory import inventory_path
    from rebirth.app import list_devices

    rows = list_devices()
    table = Table(title=f"devices ({escape(str(inventory_path() or 'no devices.toml'))})", title_justify="left")
    for column in ("name", "kind", "address / serial", "status", "detail"):
        table.add_column(column)
    colours = {"ready": "green", "device": "green", "unauthorized": "yellow"}
    for row in rows:
        table.add_row(escape(row.name), row.kind, escape(row.target),
                      f"[{colours.get(row.status, 'red')}]{escape(row.status)}[/]", escape(row.detail))
    Console().print(table)
    return EXIT_OK


def cmd_devices_info(args: argparse.Namespace) -> int:
    from rebirth.app import device_report
    from reports.terminal import render_device

    render_device(device_report(args.name))
    return EXIT_OK


def cmd_devices_check(args: argparse.Namespace) -> int:
    from rebirth.app import check_device

    def stage(text: str) -> None:
        print(f"… {text}", file=sys.stderr, flush=True)

    items = check_device(args.name, tracer=not args.no_probe, stage=stage)
    for item in items:
        print(f"{'ok  ' if item.ok else 'FAIL'} {item.name:<13} {item.detail}")
    return EXIT_OK if all(item.ok for item in items) else EXIT_FAILED


def cmd_devices_emulate(args: argparse.Namespace) -> int:
    import tempfile
    import threading

    from devices.emulator import PHONES, EmulatedPhone
    from devices.emulator.auth import read_keys
    from profiler.errors import InputError

    if args.phone not in PHONES:
        raise InputError(f"unknown phone profile {args.phone!r}; profiles: {', '.join(sorted(PHONES))}")
    keys = None
    if args.auth:
        from devices.keys import ensure_key

        files = args.authorized_keys or [ensure_key().with_suffix(".pub")]
        try:
            keys = read_keys(files)
        except (OSError, ValueError) as error:
            raise InputError(f"--authorized-keys: {error}") from None
    elif args.authorized_keys:
        raise InputError("--authorized-keys needs --auth")
    root = args.root or Path(tempfile.mkdtemp(prefix=f"rebirth-{args.phone}-"))
    try:
        phone = EmulatedPhone(root, PHONES[args.phone], host=args.host, port=args.port,
                              authorized_keys=keys).start()
    except ValueError as error:
        raise InputError(str(error)) from None
    except OSError as error:
        raise InputError(f"cannot listen on {args.host}:{args.port} ({error.strerror or error})") from None
    auth = f", RSA authentication on ({len(keys)} key{'s' if len(keys) != 1 else ''})" if keys else ""
    print(f"emulated {args.phone} listening on {phone.address}{auth}, file system in {root}; "
          f"try: adb connect {phone.address}", flush=True)
    print(f"to profile on it, put in devices.toml:  [devices.s6]  address = \"{phone.address}\"  "
          "(two lines), then: rebirth-profile --device s6 MODEL", flush=True)
    threading.Event().wait()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
