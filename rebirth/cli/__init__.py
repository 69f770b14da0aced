"""rebirth's command line: parse, call one use case, print. Nothing heavy is imported at module level, so
``--help`` answers fast.

Exit codes, the same for every command (``contract.errors.ExitStatus``): 0 done, 1 a regression, 2 the
input was wrong, 3 no answer (a device failed, or a check could not be judged), 70 a bug, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from typing import Optional

from rebirth.cli.commands import devices, farm, profiling, slimming, tune

EXIT_BUG, EXIT_INTERRUPTED = 70, 130
"""``contract.ExitStatus.BUG`` and ``INTERRUPTED``, here so that the error path imports nothing."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rebirth", description="Profile and slim neural networks on phones.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for area in (profiling, slimming, devices, farm, tune):
        area.register(commands)
    return parser


def profile_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rebirth-profile", description="Profile a model per layer on a device.")
    profiling.add_profile_arguments(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`rebirth`: the exit status; a bug raises."""
    return run(build_parser().parse_args(argv))


def profile_main(argv: Optional[Sequence[str]] = None) -> int:
    """`rebirth-profile`: the exit status; a bug raises."""
    return run(profile_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Call the command's handler; an error the user or a device caused is one line on stderr and its exit
    status. Anything else is a bug and raises."""
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print("rebirth: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        from rebirth.contract import exit_status_of

        status = exit_status_of(error)
        if status is None:
            raise
        print(f"rebirth: error: {error}", file=sys.stderr)
        return int(status)


def entry() -> int:
    """The `rebirth` program: ``main``, with a bug's traceback printed and exit 70 (not Python's 1, which
    means a regression)."""
    return _guarded(main)


def profile_entry() -> int:
    """The `rebirth-profile` program."""
    return _guarded(profile_main)


def _guarded(command) -> int:
    try:
        status = command()
    except Exception:
        traceback.print_exc()
        print("rebirth: internal error (a bug in rebirth; please report it with the traceback above)",
              file=sys.stderr)
        return EXIT_BUG
    return status


if __name__ == "__main__":
    sys.exit(entry())
