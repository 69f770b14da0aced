"""`rebirth farm run`, `rebirth results list`, `rebirth baseline save`, `rebirth history` and `rebirth regress`:
the device farm, its result store, its history and the regression checks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rebirth.cli.options import (
    add_budget,
    add_cold,
    add_etrecord,
    add_run_settings,
    add_store,
    add_trace,
    cold_settings,
    device_list,
    positive,
    thermal_options,
)


def add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="only runs of this device name or fingerprint")
    parser.add_argument("--model", default=None, help="only runs of this model (zoo:NAME, or NAME.pte@BACKEND)")


def add_stf(parser: argparse.ArgumentParser, group=None, ending: str = "run") -> None:
    """--stf, --stf-select and --count: phones leased from DeviceFarmer STF (``--stf`` in ``group`` if given)."""
    (group or parser).add_argument(
        "--stf", metavar="URL", nargs="?", const="", default=None,
        help=f"lease phones from this DeviceFarmer STF server (or [stf] url in devices.toml), token from $STF_TOKEN; "
             f"they are given back when the {ending} ends, however it ends")
    parser.add_argument("--stf-select", metavar="COND,...", default=None,
                        help="with --stf: STF device fields the phones must meet, e.g. 'sdk>=28,abi=arm64-v8a,"
                             "model=SM-G920F' (quoted: the shell takes > and < as redirections; default: any "
                             "free phone)")
    parser.add_argument("--count", type=positive, default=1, metavar="N",
                        help="with --stf: how many phones to lease (default: 1)")


def register(commands) -> None:
    farm = commands.add_parser("farm", help="profile a model on many devices at once and store the results",
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
    add_stf(run, which)
    add_run_settings(run, whose="each device's")
    add_cold(run)
    add_etrecord(run)
    add_store(run)
    add_trace(run, "every device's run, one process per device in one file,")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress, only the summary")
    run.add_argument("--summary", type=Path, default=None, metavar="PATH",
                     help="also write the outcome as Markdown here (for a CI step summary or a pull-request comment)")
    run.set_defaults(handler=cmd_farm)

    results = commands.add_parser("results", help="the result store", description="The runs `rebirth farm run` stored.")
    actions = results.add_subparsers(dest="results_command", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list", help="the latest stored runs", description="List the latest stored runs (--last, --every), by "
                                                          "device fingerprint then number.")
    add_store(listing)
    add_filters(listing)
    shown = listing.add_mutually_exclusive_group()
    shown.add_argument("--last", type=positive, default=50, metavar="N", help="the latest N runs (default: 50)")
    shown.add_argument("--every", action="store_true", help="every stored run")
    listing.set_defaults(handler=cmd_results)
    check = actions.add_parser(
        "check", help="check the store's integrity and read every run",
        description="Run the database's own integrity check, then read every stored run: a run that cannot be read "
                    "is set aside and named. Exit 0 when all is well, 1 when something was found.")
    add_store(check)
    check.set_defaults(handler=cmd_results_check)
    importing = actions.add_parser(
        "import", help="import a file store (one JSON file per run) into the store",
        description="Import the file store an earlier rebirth wrote in FOLDER (FINGERPRINT/runs/NNNN.json, "
                    "baselines/NAME) into the store, once: every run keeps its number where it is free, every "
                    "baseline its runs, and every file is accounted for. A store folder imports its own file store "
                    "on first use; this imports one into another store, such as a team's PostgreSQL store.")
    importing.add_argument("folder", type=Path, help="the file store's folder")
    add_store(importing)
    importing.set_defaults(handler=cmd_results_import)

    baseline = commands.add_parser("baseline", help="named baselines of stored runs",
                                   description="Named baselines that `rebirth regress` compares against.")
    save = baseline.add_subparsers(dest="baseline_command", required=True, metavar="ACTION").add_parser(
        "save", help="name the latest run of each device fingerprint and model a baseline",
        description="Name the latest stored run of each (device fingerprint, model) baseline NAME, all at once.")
    save.add_argument("name", help="the baseline's name (letters, digits, '.', '_', '-')")
    add_store(save)
    add_filters(save)
    save.add_argument("--force", action="store_true", help="replace a baseline of that name")
    save.set_defaults(handler=cmd_baseline)

    trend = commands.add_parser(
        "history", help="every stored run over time, with its change points (an offline page, Markdown)",
        description="Every stored run of each device fingerprint and model as a series over time: p50 with its 95% "
                    "interval, peak RSS, baselines and runs flagged noisy marked, and the change points found in it "
                    "(steps, and drifts; runs flagged noisy left out). Lines in the terminal; with -o one "
                    "self-contained HTML page, with --summary Markdown.")
    add_store(trend)
    add_filters(trend)
    trend.add_argument("-o", "--output", type=Path, default=None, metavar="PATH",
                       help="write the page here (one HTML file; it opens offline)")
    trend.add_argument("--summary", type=Path, default=None, metavar="PATH",
                       help="write Markdown here (the counts first, a row per device and model, a line per change)")
    trend.add_argument("--page-runs", type=positive, default=250, metavar="N",
                       help="runs of each series the page draws, the latest (default: 250; change points are found "
                            "over every run)")
    trend.add_argument("--every", action="store_true", help="the page draws every run")
    trend.set_defaults(handler=cmd_history)

    regress = commands.add_parser(
        "regress", help="judge results against a baseline: exit 1 on a regression, 3 when a run failed",
        description="Judge every device and model of RESULTS against the baseline (stored runs, whose run-to-run "
                    "noise is learned from the store), or, with --ab, measure a baseline and a candidate program "
                    "side by side on every device until each check is decided. A latency check such as p50:5% passes "
                    "when the 95% interval of the latency ratio lies below 1.05, is a regression when it lies above, "
                    "and is undecided otherwise. Exit 0 all pass, 1 a regression, 3 a run failed or a check could "
                    "not be decided, 2 bad input.")
    regress.add_argument("results", nargs="*", type=Path, metavar="RESULTS",
                         help="Profile JSON files, stored runs or result stores (default: the latest runs of --store)")
    regress.add_argument("--baseline", metavar="NAME|PATH",
                         help="a baseline saved with rebirth baseline save, its folder, or a Profile JSON")
    regress.add_argument("--ab", nargs=2, metavar=("BASELINE_MODEL", "CANDIDATE_MODEL"),
                         help="measure these two programs side by side on each device (--devices, --all, --group, "
                              "--stf; default local) instead of judging stored results")
    regress.add_argument("--devices", type=device_list, metavar="A,B,...", help="with --ab: the devices")
    regress.add_argument("--all", action="store_true", help="with --ab: every device of devices.toml")
    regress.add_argument("--group", metavar="NAME", help="with --ab: a group of devices.toml")
    add_stf(regress, ending="check")
    add_run_settings(regress, whose="each device's", device_backend=False)
    add_budget(regress, runs=40, seconds=600)
    regress.add_argument("--fail", action="append", default=[], metavar="CHECK",
                         help="a threshold such as p50:5%%, peak_rss:3%% or non_tensor_share:+2pt (repeatable; "
                              "default: p50:5%%, peak_rss:5%%, non_tensor_share:+2pt)")
    regress.add_argument("--device", default=None, help="stored mode: only this device name or fingerprint")
    regress.add_argument("--model", default=None,
                         help="stored mode: only this model (zoo:NAME, or NAME.pte@BACKEND), say the farm run's")
    regress.add_argument("--run-noise", type=float, default=None, metavar="PERCENT",
                         help="run-to-run noise of latency on these devices, for stored runs (default: learned from "
                              "the store's other runs of each device and model, at least 3; else 10)")
    regress.add_argument("--junit", type=Path, default=None, metavar="PATH",
                         help="write JUnit XML here")
    regress.add_argument("--summary", type=Path, default=None, metavar="PATH",
                         help="write a Markdown summary here (verdict first, one row per device and check; for a CI "
                              "step summary such as $GITHUB_STEP_SUMMARY, or a pull-request comment)")
    add_store(regress)
    regress.set_defaults(handler=cmd_regress)


def targets_of(args: argparse.Namespace, default: tuple[str, ...] = ()):
    """The devices the options name: --devices, --all, --group, or --stf with its selection and count."""
    from rebirth.usecases.farm import Targets

    stf = getattr(args, "stf", None)
    return Targets(tuple(args.devices or ()) or (default if not (args.all or args.group or stf is not None) else ()),
                   args.all, args.group, stf, getattr(args, "stf_select", None), getattr(args, "count", 1))


def cmd_farm(args: argparse.Namespace) -> int:
    from rebirth.cli.farm_progress import FarmView
    from rebirth.cli.tracing import timelines_for, write_trace_file
    from rebirth.contract import ExitStatus, InputError
    from rebirth.profiler import ProfileOptions
    from rebirth.reports import render_farm_summary
    from rebirth.usecases.farm import farm_run

    cold, cold_executions = cold_settings(args)
    options = ProfileOptions(backend=args.backend, warmup=args.warmup, iterations=args.iterations,
                             threads=args.threads, cold=cold, cold_executions=cold_executions,
                             **thermal_options(args))
    timelines = timelines_for(args)
    with FarmView(enabled=not args.quiet) as view:
        runs = farm_run(args.model, targets_of(args), args.store, options, view, etrecord=args.etrecord,
                        say=lambda text: print(text, file=sys.stderr), timelines=timelines)
    render_farm_summary(runs)
    write_trace_file(args, timelines)
    if args.summary:
        from rebirth.reports.markdown import write_farm_summary

        try:
            write_farm_summary(args.summary, runs)
        except OSError as error:
            raise InputError(f"{args.summary}: cannot write ({error.strerror or error})") from None
    failures = [run for run in runs if not run.ok]
    for run in failures:
        print(f"rebirth: error: {run.device} failed: {run.error}", file=sys.stderr)
    return ExitStatus.NO_ANSWER if failures else ExitStatus.OK


def cmd_results(args: argparse.Namespace) -> int:
    from rebirth.reports import results_table
    from rebirth.results import open_store

    with open_store(args.store) as store:
        runs = store.runs(args.device, args.model, last=None if args.every else args.last)
        total = store.count() if not (args.device or args.model or args.every) else None
        location = store.location
    if not runs:
        print(f"no stored runs in {location}" + (" that match" if args.device or args.model else ""))
        return 0
    for line in results_table(runs):
        print(line)
    if not args.every and (len(runs) == args.last and (total is None or total > len(runs))):
        more = f"{total - len(runs)} earlier runs" if total is not None else "earlier runs may match"
        print(f"({more} not shown: --last N or --every)")
    return 0


def cmd_results_check(args: argparse.Namespace) -> int:
    from rebirth.contract import InputError
    from rebirth.results import open_store

    with open_store(args.store) as store:
        problems = store.check(say=lambda text: print(f"rebirth: {text}", file=sys.stderr))
        location = store.location
        try:
            count, aside = str(store.count()), store.set_aside_runs()
        except InputError:
            count, aside = "no", []  # the check named why
    for fingerprint, number, reason, when in aside:
        print(f"set aside: {fingerprint}/{number:04d} ({when}): {reason}")
    for problem in problems:
        print(f"problem: {problem}")
    if problems:
        print(f"{location}: {len(problems)} problem{'s' if len(problems) != 1 else ''}: restore the store from a "
              "backup, or keep the runs it still lists (rebirth.store(...).frame()) and start a new one")
        return 1
    print(f"{location}: {count} readable run{'s' if count != '1' else ''}, {len(aside)} set aside; integrity ok")
    return 0


def cmd_results_import(args: argparse.Namespace) -> int:
    from rebirth.contract import InputError
    from rebirth.results import import_file_store, open_store
    from rebirth.results.filestore import has_files

    if not args.folder.is_dir() or not has_files(args.folder):
        raise InputError(f"{args.folder}: no file store there (FINGERPRINT/runs/NNNN.json)")
    with open_store(args.store) as store:
        line = import_file_store(args.folder, store, say=print)
        if line is None:
            print(f"{args.folder}: imported into {store.location} before; nothing to do")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from rebirth.results import open_store, save_baseline

    with open_store(args.store) as store:
        runs = store.runs(args.device, args.model) if args.device or args.model else None
        count = save_baseline(store, args.name, runs, force=args.force)
        print(f"baseline {args.name}: {count} result{'s' if count != 1 else ''} in {store.location}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from rebirth.reports.history import history_lines, write_history, write_history_summary
    from rebirth.usecases.history import history

    found = history(args.store, device=args.device, model=args.model)
    for line in history_lines(found):
        print(line)
    if args.output:
        print(f"wrote {write_history(args.output, found, None if args.every else args.page_runs)}")
    if args.summary:
        write_history_summary(args.summary, found)
    return 0


def cmd_regress(args: argparse.Namespace) -> int:
    from rebirth.contract import InputError
    from rebirth.contract.checks import exit_code
    from rebirth.reports import render_verdicts, write_junit, write_summary

    if (args.baseline is None) == (args.ab is None):
        raise InputError("name either --baseline (judge stored results) or --ab BASELINE CANDIDATE (measure both)")
    chosen = [flag for flag, given in (("--devices", args.devices), ("--all", args.all), ("--group", args.group),
                                       ("--stf", args.stf is not None)) if given]
    leasing = [flag for flag, given in (("--stf-select", args.stf_select is not None), ("--count", args.count != 1))
               if given]
    if args.ab and (args.device or args.model):
        raise InputError(f"{'--device' if args.device else '--model'} chooses stored results; --ab measures the two "
                         "programs it is given")
    if (chosen or leasing) and not args.ab:
        raise InputError(f"{(chosen or leasing)[0]} chooses devices to measure on, with --ab; stored results were "
                         "measured already")
    if len(chosen) > 1:
        raise InputError(f"{' and '.join(chosen)}: choose the devices one way")
    if args.ab:
        verdicts = _regress_side_by_side(args)
    else:
        from rebirth.usecases.regress import regress_stored

        noise = None if args.run_noise is None else args.run_noise / 100
        verdicts = regress_stored(args.store, args.baseline, results=args.results, checks=args.fail,
                                  run_noise=noise, device=args.device, model=args.model)
    render_verdicts(verdicts)
    for path, write in ((args.junit, write_junit), (args.summary, write_summary)):
        if path:
            try:
                write(path, verdicts)
            except OSError as error:
                raise InputError(f"{path}: cannot write ({error.strerror or error})") from None
    return exit_code(verdicts)


def _regress_side_by_side(args: argparse.Namespace) -> list:
    """--ab: both programs measured side by side on every device, each verdict from its pairs."""
    from rebirth.cli.farm_progress import FarmView
    from rebirth.contract.paired import Budget
    from rebirth.profiler import ProfileOptions
    from rebirth.usecases.regress import SideBySide, regress_side_by_side

    options = ProfileOptions(backend=args.backend, warmup=args.warmup, iterations=args.iterations,
                             threads=args.threads, **thermal_options(args))
    request = SideBySide(args.ab[0], args.ab[1], targets_of(args, default=("local",)), options,
                         Budget(args.max_runs, args.max_time))
    with FarmView() as view:
        return regress_side_by_side(request, args.fail, view)
