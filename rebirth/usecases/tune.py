"""`rebirth tune`: which backend, core set and thread count run a model best on a device, measured side by side
against rebirth's default, and the best written into devices.toml for the device's later runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rebirth.contract.errors import InputError
from rebirth.contract.paired import Budget, Question
from rebirth.contract.tune import UNDECIDED, Setting, TuneRecord
from rebirth.devices import ProgressCallback, open_device
from rebirth.models import PTE, parse_spec
from rebirth.profiler import ProfileOptions, Program, prepare
from rebirth.profiler.measure import Stage
from rebirth.profiler.paired import CONFIDENCE
from rebirth.profiler.tune import PORTABLE, XNNPACK, Tuned, best, measure, plan

RUNS_PER_SETTING = 40
"""The run budget's default: this many runs per setting (the default's runs included)."""


@dataclass(frozen=True, kw_only=True)
class TuneOptions:
    device: str = "local"
    backends: tuple[str, ...] = (XNNPACK, PORTABLE)
    """The backends to lower a model to and measure (a .pte has its own, fixed)."""
    warmup: Optional[int] = None
    iterations: Optional[int] = None
    precision: float = 0.05
    """Stop measuring a setting once its ratio to the default is known to ±this."""
    max_seconds: float = 600.0
    max_runs: Optional[int] = None
    """None: ``RUNS_PER_SETTING`` per setting."""
    every_thread_count: bool = False


def tune(model: str, options: TuneOptions = TuneOptions(), *, stage: Optional[Stage] = None,
         progress: Optional[ProgressCallback] = None) -> TuneRecord:
    """Measure ``model``'s run settings on ``options.device`` against rebirth's default until each is decided or
    the budget spent, and name the best.

    Raises:
        InputError: the model argument, file or export is wrong, or the device is unknown.
        DeviceError: the device failed.
    """
    spec = parse_spec(model)
    if not options.backends:
        raise InputError("name at least one backend to tune")
    with open_device(options.device) as device:
        programs, notes = _programs(model, spec.kind == PTE, options.backends, stage)
        tuning = plan(device.state().cores, tuple(programs), options.every_thread_count)
        runs = options.max_runs or RUNS_PER_SETTING * len(tuning.settings)
        budget = Budget(max_runs=runs, max_seconds=options.max_seconds)
        base = ProfileOptions(device.name, warmup=options.warmup, iterations=options.iterations)
        (stage or (lambda text: None))(f"measuring {len(tuning.settings)} settings against rebirth's default "
                                       f"({tuning.reference}), at most {runs} runs or {options.max_seconds:.0f} s")
        tuned = measure(programs, device, base, tuning, Question(options.precision), budget, stage)
        name = device.name
    return _record(spec.text, name, tuning.reference, tuned, (*notes, *tuning.notes), options, spec.kind == PTE)


def _programs(model: str, is_pte: bool, backends: tuple[str, ...],
              stage: Optional[Stage]) -> tuple[dict[str, Program], tuple[str, ...]]:
    if is_pte:
        program = prepare(model, XNNPACK, stage=stage)
        return {program.pte.backend: program}, (f"a .pte was given: its backend ({program.pte.backend}) is fixed, "
                                                "so only core sets and threads are tuned",)
    return {backend: prepare(model, backend, stage=stage) for backend in backends}, ()


def _record(model: str, device: str, reference: Setting, tuned: Tuned, notes: tuple[str, ...],
            options: TuneOptions, fixed_backend: bool) -> TuneRecord:
    winner = best(tuned.rows)
    undecided = sum(row.status == UNDECIDED for row in tuned.rows)
    left = (f"; {undecided} setting{'s' if undecided > 1 else ''} still undecided when the budget ran out"
            if undecided else "")
    if winner is None:
        verdict = f"no setting is told apart from rebirth's default ({reference}) as faster: keep it" + left
    else:
        speedup, low, high = 1 / winner.ratio, 1 / winner.high, 1 / winner.low
        verdict = (f"best: {winner.setting}: {speedup:.2f}x as fast as rebirth's default ({reference}), "
                   f"{CONFIDENCE:.0%} CI {low:.2f}-{high:.2f}x" + left)
    together = (f"the intervals are {CONFIDENCE:.0%} for all {len(tuned.rows) - 1} settings together (each at "
                f"{tuned.confidence:.2%})",) if len(tuned.rows) > 2 else ()
    return TuneRecord(model, device, reference, tuned.rows, winner.setting if winner else None, verdict,
                      (*notes, *together), options.precision, CONFIDENCE, tuned.blocks, tuned.seconds, fixed_backend)


def check_save(device: str) -> None:
    """Raise now the ConfigError that saving the best setting for ``device`` would raise after measuring."""
    from rebirth.devices.saving import check_savable

    check_savable(device)


def save_best(record: TuneRecord, path: Optional[Path] = None) -> Optional[Path]:
    """Write the record's best setting into devices.toml for its device (threads, cpu_mask, and the backend
    when the model was not a .pte); None when there is no best setting to write.

    Raises:
        ConfigError: the device has no entry to write to, or the file cannot be edited.
    """
    from rebirth.devices.saving import save_settings

    chosen = record.best
    if chosen is None:
        return None
    values: dict[str, str | int] = {"threads": chosen.threads, "cpu_mask": chosen.cpu_mask}
    if not record.fixed_backend:
        values["backend"] = chosen.backend
    return save_settings(record.device, values, path)
