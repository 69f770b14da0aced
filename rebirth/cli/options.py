"""Options several commands share, added to their parsers one way."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

BACKENDS = ("portable", "xnnpack")
"""``models.BACKENDS``, repeated so that ``--help`` imports nothing (a test checks they agree)."""


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


def device_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one device")
    return names


def add_run_settings(parser: argparse.ArgumentParser, whose: str = "the device's", device_backend: bool = True) -> None:
    """--backend, --warmup, --iterations and --threads: how a model is lowered and run on a device.

    ``device_backend``: without --backend, each device's backend from devices.toml (``rebirth tune --save``);
    else xnnpack for every device."""
    if device_backend:
        parser.add_argument("--backend", choices=BACKENDS, default=None,
                            help=f"backend to lower to when MODEL is not a .pte (default: {whose} in devices.toml, "
                                 "else xnnpack)")
    else:
        parser.add_argument("--backend", choices=BACKENDS, default="xnnpack",
                            help="backend to lower to when MODEL is not a .pte (default: xnnpack)")
    parser.add_argument("--warmup", type=non_negative, default=None,
                        help=f"untimed runs first (default: {whose} in devices.toml, else 3)")
    parser.add_argument("--iterations", type=positive, default=None,
                        help=f"timed runs (default: {whose} in devices.toml, else 20)")
    parser.add_argument("--threads", type=positive, default=None,
                        help=f"runtime threads (default: {whose}; phones: one per big core)")
    parser.add_argument("--cool-below", type=non_negative_float, default=None, metavar="°C",
                        help="before each measured run (each block of a comparison), wait until the hottest thermal "
                             f"zone is below this (default: {whose} cool_below_c in devices.toml, else its learned "
                             "idle temperature + 3 °C)")
    parser.add_argument("--cool-wait", type=non_negative_float, default=None, metavar="SECONDS",
                        help=f"the longest wait for it (default: {whose} cool_wait_s, else 120)")
    parser.add_argument("--no-thermal-gate", action="store_true",
                        help="neither wait for the device to cool nor leave out blocks whose clocks moved, that "
                             "throttled or that ran too hot (the numbers then carry whatever the heat did)")


def thermal_options(args: argparse.Namespace) -> dict:
    """The thermal gate's options of ``add_run_settings``, as ``ProfileOptions`` takes them."""
    return {"cool_below_c": args.cool_below, "cool_wait_s": args.cool_wait, "thermal_gate": not args.no_thermal_gate}


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number, 0 or more")
    return value


def add_budget(parser: argparse.ArgumentParser, runs: int = 40, seconds: float = 600.0) -> None:
    """--max-runs and --max-time: how much measuring a paired comparison may do before it says undecided."""
    parser.add_argument("--max-runs", type=positive, default=runs, metavar="N",
                        help=f"runs of both models together before giving up undecided (default: {runs})")
    parser.add_argument("--max-time", type=float, default=seconds, metavar="SECONDS",
                        help=f"seconds of measuring before giving up undecided (default: {seconds:g})")


def add_etrecord(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--etrecord", type=Path, default=None,
                        help="ETRecord of the .pte (default: NAME.etrecord beside NAME.pte)")


def add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=None, metavar="DIR|FILE|URL",
                        help="the result store: a folder (its rebirth.sqlite), a .sqlite file, or postgresql://USER@HOST"
                             "/DATABASE for a team's shared store (default: $REBIRTH_RESULTS, else ./rebirth-results)")


def add_top(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--top", type=positive, default=15, help="rows in the terminal tables (default: 15)")


COLD_EXECUTIONS = 5
"""``profiler.cold.COLD_EXECUTIONS``, repeated so that ``--help`` imports nothing."""


def add_cold(parser: argparse.ArgumentParser) -> None:
    """--cold N and --cold-executions K: the model's start timed in N fresh processes."""
    parser.add_argument("--cold", type=int, default=None, metavar="N",
                        help="also time the start in N fresh runner processes (page cache dropped where allowed): "
                             "program load, method init, first inference and the warm-up curve")
    parser.add_argument("--cold-executions", type=int, default=COLD_EXECUTIONS, metavar="K",
                        help=f"executions timed in each fresh process (default: {COLD_EXECUTIONS})")


def cold_settings(args: argparse.Namespace) -> tuple[int, int]:
    """``ProfileOptions``' ``cold`` and ``cold_executions`` from --cold and --cold-executions (0: no cold start).

    Raises:
        InputError: either is below 1 (one line, exit 2, as every mistake of a user).
    """
    from rebirth.contract import InputError

    for flag, value in (("--cold", args.cold), ("--cold-executions", args.cold_executions)):
        if value is not None and value < 1:
            raise InputError(f"{flag} {value}: give at least 1 (the number of fresh processes, or of executions "
                             "timed in each)")
    return args.cold or 0, args.cold_executions


def add_trace(parser: argparse.ArgumentParser, what: str = "the run") -> None:
    parser.add_argument("--trace", type=Path, default=None, metavar="FILE",
                        help=f"write {what} as a timeline here: Chrome trace-event JSON that ui.perfetto.dev and "
                             "chrome://tracing open (each execution's ops, nested delegate ops, device counters)")
