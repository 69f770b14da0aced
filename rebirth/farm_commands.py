"""`rebirth farm run`, `rebirth results list`, `rebirth baseline save` and `rebirth regress`: the
device farm, its result store and the regression checks on the command line. Hooked into
``rebirth.cli`` with ``add_commands`` and ``HANDLERS``.

Exit codes: 0 done (every check passed), 1 a regression, 2 the user's input was wrong, 3 a device
failed (the others' results are stored all the same) or a check could not be judged (too noisy,
data missing).
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
    from rebirth.cli import add_run_settings

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
    add_run_settings(run, whose="each device's")
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

    regress = subparsers.add_parser(
        "regress", help="judge results against a baseline: exit 1 on a regression, 3 when a run failed",
        description="Judge every device and model of RESULTS against the baseline. A latency regression must "
                    "exceed its threshold and be significant on the raw samples; a check too noisy to judge "
                    "says so. Exit 0 all pass, 1 a regression, 3 a run failed or could not be judged, 2 bad input.")
    regress.add_argument("results", nargs="*", type=Path, metavar="RESULTS",
                         help="Profile JSON files, stored runs or result stores (default: the latest runs of --store)")
    regress.add_argument("--baseline", required=True, metavar="NAME|PATH",
                         help="a baseline saved with rebirth baseline save, its folder, or a Profile JSON")
    regress.add_argument("--fail", action="append", default=[], metavar="CHECK",
                         help="a threshold such as p50:5%%, peak_rss:3%% or non_tensor_share:+2pt (repeatable; "
                              "default: p50:5%%, peak_rss:5%%, non_tensor_share:+2pt)")
    regress.add_argument("--run-noise", type=float, default=None, metavar="PERCENT",
                         help="run-to-run noise of latency on these devices (default: 1)")
    regress.add_argument("--junit", type=Path, default=None, metavar="PATH", help="write JUnit XML here")
    add_store_argument(regress)


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


def cmd_regress(args: argparse.Namespace) -> int:
    from profiler.errors import InputError
    from reports.junit import write_junit
    from reports.regress import RUN_NOISE, exit_code, failed, judge, parse_checks
    from reports.regress_view import render_verdicts
    from reports.store import store_root

    checks = parse_checks(args.fail)
    store = store_root(args.store)
    baseline = load_baseline_profiles(store, args.baseline)
    results = collect_results(args.results, store)
    noise = RUN_NOISE if args.run_noise is None else args.run_noise / 100
    verdicts = [judge(baseline[key], profile, checks, run_noise=noise) if key in baseline
                else failed(profile.device.name, key[1], f"no baseline for this device and model in {args.baseline}")
                for key, profile in results.items()]
    verdicts += [failed(profile.device.name, key[1], "no result: the run failed or was not made")
                 for key, profile in baseline.items() if key not in results]
    if not verdicts:
        raise InputError("nothing to judge: no results and an empty baseline")
    render_verdicts(verdicts)
    if args.junit:
        try:
            write_junit(args.junit, verdicts)
        except OSError as error:
            raise InputError(f"{args.junit}: cannot write ({error.strerror or error})") from None
    return exit_code(verdicts)


def load_baseline_profiles(store: Path, name_or_path: str) -> dict:
    """The baseline's Profiles by ``key_of``: a saved baseline (name or folder) or one JSON file."""
    from reports.store import key_of, load_baseline

    path = Path(name_or_path)
    if path.is_file():
        profile = _load_result(path)
        return {key_of(profile): profile}
    return load_baseline(store, name_or_path)


def collect_results(paths: list[Path], store: Path) -> dict:
    """The Profiles to judge by ``key_of`` (the latest per key): files, stores, or the default store."""
    from profiler.errors import InputError
    from reports.store import key_of, latest_runs, list_runs

    profiles = []
    for path in paths or [store]:
        if path.is_dir():
            profiles += [run.profile for run in latest_runs(list_runs(path))]
        elif path.is_file():
            profiles.append(_load_result(path))
        else:
            raise InputError(f"{path}: no such file or folder")
    return {key_of(profile): profile for profile in profiles}


def _load_result(path: Path):
    """A Profile from a Profile JSON file or a stored run."""
    import json

    from profiler.errors import InputError
    from profiler.record import Profile
    from reports.store import load_run

    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a rebirth profile or stored run ({error})") from None
    return load_run(path).profile if isinstance(data, dict) and "profile" in data else Profile.load(path)


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "farm": cmd_farm, "results": cmd_results, "baseline": cmd_baseline, "regress": cmd_regress}
