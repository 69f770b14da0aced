"""`rebirth tune`: the best backend, core set and thread count for a model on a device."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from rebirth.cli.options import BACKENDS, non_negative, positive


def register(commands) -> None:
    tune = commands.add_parser(
        "tune", help="find the best backend, cores and threads for a model on a device",
        description="Measure a model's run settings on a device side by side against rebirth's default (XNNPACK on "
                    "the big cores, one thread per big core): backends, core sets (big, little and all, from each "
                    "cluster's maximum frequency) and thread counts (1, powers of two and the core set's size), in "
                    "alternating blocks until each setting's latency ratio to the default is known to --precision "
                    "or the budget is spent. Prints the table and the best setting; --save writes it into "
                    "devices.toml, where profile, compare and farm run take it from.")
    tune.add_argument("model", help="a .pte (its backend is fixed), a .pt2, file.py:NAME or zoo:NAME")
    tune.add_argument("--device", default="local", help="device name (default: local, this host)")
    tune.add_argument("--backend", choices=BACKENDS, action="append", default=None,
                      help="a backend to measure (repeat for several; default: xnnpack and portable)")
    tune.add_argument("--every-thread-count", action="store_true",
                      help="measure every thread count from 1 to each core set's size, not just 1, powers of two "
                           "and the size")
    tune.add_argument("--warmup", type=non_negative, default=None,
                      help="untimed runs first (default: the device's in devices.toml, else 3)")
    tune.add_argument("--iterations", type=positive, default=None,
                      help="timed runs per run (default: the device's, else 20, lengthened for fast models)")
    tune.add_argument("--precision", type=float, default=5.0, metavar="PERCENT",
                      help="stop measuring a setting once its ratio to the default is known to ±PERCENT "
                           "(default: 5)")
    tune.add_argument("--budget-s", type=float, default=600.0, metavar="SECONDS",
                      help="seconds of measuring in all (default: 600)")
    tune.add_argument("--max-runs", type=positive, default=None, metavar="N",
                      help="runs in all (default: 40 per setting)")
    tune.add_argument("--save", action="store_true",
                      help="write the best setting (threads, cpu_mask, backend) into the device's entry of "
                           "devices.toml ([local] for this host)")
    tune.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the tune record here")
    tune.add_argument("-q", "--quiet", action="store_true", help="no progress")
    tune.set_defaults(handler=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> int:
    from rebirth.cli.commands.profiling import save_profile
    from rebirth.cli.progress import ProgressView
    from rebirth.contract import InputError
    from rebirth.reports import render_tune
    from rebirth.usecases.tune import TuneOptions, check_save, save_best, tune

    if not (0 < args.budget_s < math.inf and 0 < args.precision < math.inf):  # nan fails too
        raise InputError("--budget-s and --precision must be positive numbers")
    options = TuneOptions(device=args.device, backends=tuple(dict.fromkeys(args.backend or ("xnnpack", "portable"))),
                          warmup=args.warmup, iterations=args.iterations, precision=args.precision / 100,
                          max_seconds=args.budget_s, max_runs=args.max_runs,
                          every_thread_count=args.every_thread_count)
    if args.save:
        check_save(args.device)
    with ProgressView(enabled=not args.quiet) as view:
        record = tune(args.model, options, stage=view.stage, progress=view.update)
    if args.json:
        save_profile(record, args.json, "tune record")
    render_tune(record)
    if args.save:
        written = save_best(record)
        print(f"saved to {written}: [{_table(record.device)}] {_saved(record)}" if written else
              "nothing saved: no setting is better than rebirth's default", file=sys.stdout)
    if args.json:
        print(f"tune record written to {args.json}")
    return 0


def _table(device: str) -> str:
    return "local" if device == "local" else f"devices.{device}"


def _saved(record) -> str:
    best = record.best
    shown = f"threads = {best.threads}, cpu_mask = \"{best.cpu_mask}\""
    return shown + (f", backend = \"{best.backend}\"" if not record.fixed_backend else "")
