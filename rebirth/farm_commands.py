"""`rebirth farm run`, `rebirth results list` and `rebirth baseline save`: the device farm and its
result store on the command line. Hooked into ``rebirth.cli`` with ``add_commands`` and ``HANDLERS``.

Exit codes: 0 done, 2 the user's input was wrong, 3 a farm run in which a device failed (the
others' results are stored all the same).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

EXIT_OK, EXIT_DEVICE_FAILED = 0, 3


def device_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one device")
    return names


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, default=None, metavar="DIR",
                        help="the result store (default: $REBIRTH_RESULTS, else ./rebirth-results)")


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="only runs of this device name or fingerprint")
    parser.add_argument("--model", default=None, help="only runs of this model (zoo:NAME, or NAME.pte@BACKEND)")


def add_commands(subparsers) -> None:
    """Add `farm`, `results` and `baseline` to rebirth's sub-commands."""
    from rebirth.cli import BACKENDS, non_negative, positive

    farm = subparsers.add_parser("farm", help="profile a model on many devices at once and store the results",
                                 description="Profile a model on many devices at once and store the results.")
    actions = farm.add_subparsers(dest="farm_command", required=True, metavar="ACTION")
    run = actions.add_parser(
        "run", help="one worker per device, in parallel; a failed device is reported and the others go on",
        description="Export MODEL once, profile it on every device at once (each its own connection) and store "
                    "each result. Exit code 3 when a device failed.")
    run.add_argument("model", help="a .pte, a .pt2, file.py:NAME or zoo:NAME")
    which = run.add_mutually_exclusive_group(required=True)
    which.add_argument("--devices", type=device_list, metavar="A,B,...",
                       help="device names of devices.toml, host:port (e.g. a DeviceFarmer STF remote connect "
                            "address) or adb:SERIAL (a phone of a running adb server)")
    which.add_argument("--all", action="store_true", help="every device of devices.toml")
    which.add_argument("--group", metavar="NAME", help="a group of devices.toml's [groups] table")
    run.add_argument("--backend", choices=BACKENDS, default="xnnpack",
                     help="backend to lower to when MODEL is not a .pte (default: xnnpack)")
    run.add_argument("--warmup", type=non_negative, default=None,
                     help="untimed runs first (default: each device's in devices.toml, else 3)")
    run.add_argument("--iterations", type=positive, default=None,
                     help="timed runs (default: each device's in devices.toml, else 20)")
    run.add_argument("--threads", type=positive, default=None, help="runtime threads (default: each device's)")
    run.add_argument("--etrecord", type=Path, default=None,
                     help="ETRecord of the .pte (default: NAME.etrecord beside NAME.pte)")
    add_store_argument(run)
    run.add_argument("-q", "--quiet", action="store_true", help="no progress, only the summary")

    results = subparsers.add_parser("results", help="the result store",
                                    description="The runs `rebirth farm run` stored.")
    listing = results.add_subparsers(dest="results_command", required=True, metavar="ACTION").add_parser(
        "list", help="every stored run", description="List the stored runs, by device fingerprint then number.")
    add_store_argument(listing)
    add_filter_arguments(listing)

    baseline = subparsers.add_parser("baseline", help="named baselines of stored runs",
                                     description="Named baselines that `rebirth regress` compares against.")
    save = baseline.add_subparsers(dest="baseline_command", required=True, metavar="ACTION").add_parser(
        "save", help="copy the latest run of each device fingerprint and model into a baseline",
        description="Copy the latest stored run of each (device fingerprint, model) into STORE/baselines/NAME.")
    save.add_argument("name", help="the baseline's name (letters, digits, '.', '_', '-')")
    add_store_argument(save)
    add_filter_arguments(save)
    save.add_argument("--force", action="store_true", help="replace a baseline of that name")


def cmd_farm(args: argparse.Namespace) -> int:
    from devices.farm import resolve_targets
    from rebirth.farm import FarmRequest, run_farm
    from rebirth.farm_view import FarmView, render_summary
    from reports.store import store_root

    targets = resolve_targets(args.devices or (), args.all, args.group)
    request = FarmRequest(args.model, tuple(targets), store_root(args.store), args.backend, args.warmup,
                          args.iterations, args.threads, args.etrecord)
    with FarmView(targets, enabled=not args.quiet) as view:
        runs = run_farm(request, view)
    render_summary(runs)
    failures = [run for run in runs if not run.ok]
    for run in failures:
        print(f"rebirth: error: {run.device} failed: {run.error}", file=sys.stderr)
    return EXIT_DEVICE_FAILED if failures else EXIT_OK


def cmd_results(args: argparse.Namespace) -> int:
    from reports.store import list_runs, store_root

    store = store_root(args.store)
    runs = list_runs(store, args.device, args.model)
    if not runs:
        print(f"no stored runs in {store}" + (" that match" if args.device or args.model else ""))
        return EXIT_OK
    for line in results_table(runs):
        print(line)
    return EXIT_OK


def results_table(runs) -> list[str]:
    """Aligned plain-text rows (a header first): easy to read and to grep."""
    from reports.units import mib, ms

    rows = [("fingerprint", "run", "device", "model", "commit", "time", "p50", "peak RSS")]
    rows += [(run.fingerprint, f"{run.number:04d}", run.device, run.model_key, (run.commit or "-")[:10], run.time,
              ms(run.profile.latency.p50), mib(run.profile.memory.peak_rss_bytes)) for run in runs]
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def cmd_baseline(args: argparse.Namespace) -> int:
    from reports.store import list_runs, save_baseline, store_root

    store = store_root(args.store)
    runs = list_runs(store, args.device, args.model) if args.device or args.model else None
    folder = save_baseline(store, args.name, runs, force=args.force)
    count = sum(1 for _ in folder.glob("*/*.json"))
    print(f"baseline {args.name}: {count} result{'s' if count != 1 else ''} in {folder}")
    return EXIT_OK


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "farm": cmd_farm, "results": cmd_results, "baseline": cmd_baseline}
