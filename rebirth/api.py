"""rebirth's Python API: each job of the command line as one call that returns the records the command writes.

Nothing heavy is imported until a call needs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from rebirth.contract.checks import Check, Verdict
    from rebirth.contract.history import History
    from rebirth.contract.loading import Record
    from rebirth.contract.profile import Profile
    from rebirth.contract.slim import SlimRecord
    from rebirth.profiler.paired import PairedResult
    from rebirth.results.database import DatabaseStore
    from rebirth.usecases.slimming import Optimized


def profile(model: str, *, device: str = "local", backend: Optional[str] = None, warmup: Optional[int] = None,
            iterations: Optional[int] = None, threads: Optional[int] = None,
            etrecord: Optional[str | os.PathLike] = None) -> Profile:
    """Profile ``model`` per layer on ``device``: `rebirth profile`.

    Args:
        model: a .pte, a .pt2, ``file.py:NAME`` (returns ``(model, example_inputs)``) or ``zoo:NAME``.
        device: ``local`` (this host) or a device of devices.toml, ``host:port`` or ``adb:SERIAL``.
        backend: ``xnnpack`` or ``portable`` (None: the device's in devices.toml, else xnnpack).
        warmup, iterations, threads: as on the command line (None: the device's settings, else 3 and 20).
        etrecord: the ETRecord of a .pte (default: NAME.etrecord beside it).

    Returns:
        The Profile (``.to_dataframe()`` has one row per op).

    Raises:
        rebirth.InputError: a bad model or device name; rebirth.DeviceError: the device failed.
    """
    from rebirth.profiler import ProfileOptions
    from rebirth.usecases.profiling import profile as run

    options = ProfileOptions(device, backend, warmup, iterations, threads, Path(etrecord) if etrecord else None)
    return run(model, options)


def compare(a: str, b: str, *, device: str = "local", backend: Optional[str] = None, warmup: Optional[int] = None,
            iterations: Optional[int] = None, threads: Optional[int] = None, precision: float = 0.02,
            max_runs: int = 40, max_seconds: float = 600.0) -> PairedResult:
    """Measure ``a`` and ``b`` side by side on one device until B's latency over A's is known to ``precision``
    (0.02: ±2%) or the budget is spent: `rebirth compare`.

    Returns:
        ``.comparison`` (the PairedComparison: ``speedup``, ``speedup_interval``, ``decided``, the runs in
        ``.to_dataframe()``), and ``.a`` and ``.b``, one traced Profile of each.
    """
    from rebirth.contract.paired import Budget, Question
    from rebirth.profiler import ProfileOptions
    from rebirth.usecases.profiling import compare as run

    options = ProfileOptions(device, backend, warmup, iterations, threads)
    return run(a, b, options, question=Question(precision), budget=Budget(max_runs, max_seconds))


def slim(model: str, *, outdir: str | os.PathLike, profile: Optional[str | os.PathLike] = None, data: str = "digits",
         plan: Optional[str | os.PathLike] = None, **options: Any) -> SlimRecord:
    """Slim ``model`` with its profile and write the programs and slim.json into ``outdir``: `rebirth slim`.

    Args:
        model: ``file.py:NAME`` or ``zoo:NAME`` (a .pte has no graph left to slim).
        profile: the model's Profile JSON (default: profile it on this computer first).
        data: ``digits``, or ``file.py:NAME`` returning (train, held_out) DataLoaders.
        plan: a slim.json (or its folder) whose kept steps to make again, in its order (`--plan FILE`).
        options: any field of ``rebirth.slimmer.SlimOptions``, e.g. ``max_accuracy_drop=1.0``,
            ``skip=("low_rank", "int8")`` (every technique runs by default), ``exact_only=True``.

    Returns:
        The SlimRecord (``.files`` lists what was written; ``.to_dataframe()`` has one row per step).
    """
    from rebirth.slimmer import SlimOptions
    from rebirth.usecases.slimming import SlimRequest, slim_model

    request = SlimRequest(model=model, outdir=Path(outdir), profile=Path(profile) if profile else None, data=data,
                          options=SlimOptions(**_replaying(plan, options)))
    return slim_model(request)


def optimize(model: str, *, outdir: str | os.PathLike, device: str = "local", data: str = "digits",
             precision: float = 0.03, max_runs: int = 40, max_seconds: float = 300.0,
             plan: Optional[str | os.PathLike] = None, **options: Any) -> Optimized:
    """Profile, slim, then measure the original and the slimmed program side by side, and write the report into
    ``outdir``: `rebirth optimize`.

    Args:
        plan: a slim.json (or its folder) whose kept steps to make again (see ``slim``).
        options: any field of ``rebirth.slimmer.SlimOptions`` (see ``slim``).

    Returns:
        ``.before`` and ``.after`` (Profiles), ``.slim`` (the SlimRecord) and ``.paired`` (the PairedComparison).
    """
    from rebirth.slimmer import SlimOptions
    from rebirth.usecases.slimming import OptimizeRequest
    from rebirth.usecases.slimming import optimize as run

    request = OptimizeRequest(model=model, outdir=Path(outdir), device=device, data=data, precision=precision,
                              max_runs=max_runs, max_seconds=max_seconds,
                              options=SlimOptions(**_replaying(plan, options)))
    return run(request)


def _replaying(plan: Optional[str | os.PathLike], options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the recorded ``plan`` to replay, if one is given."""
    if plan is None:
        return options
    from rebirth.slimmer.replay import load_replay

    return {**options, "replay": load_replay(plan)}


def regress(baseline: Optional[str] = None, *, results: Sequence[str | os.PathLike] = (),
            store: Optional[str | os.PathLike] = None, checks: Iterable[str | Check] = (),
            run_noise: Optional[float] = None) -> list[Verdict]:
    """Judge stored results against a baseline: `rebirth regress --baseline`.

    Args:
        baseline: a baseline saved with `rebirth baseline save` (its name or folder), or a Profile file.
        results: Profile files, stored runs or stores (default: the latest farm run in ``store``).
        store: the result store: a folder, a .sqlite file or a postgresql:// URL (default: $REBIRTH_RESULTS, else
            ./rebirth-results).
        checks: such as ``"p50:5%"`` (default: p50:5%, peak_rss:5%, non_tensor_share:+2pt).
        run_noise: the relative run-to-run noise of latency (default: learned from the store).

    Returns:
        One Verdict per device and model (``rebirth.verdicts_frame(verdicts)`` is a DataFrame of every check).
    """
    from rebirth.contract.errors import InputError
    from rebirth.usecases.regress import regress_stored

    if baseline is None:
        raise InputError("regress needs a baseline: a saved baseline's name or folder, or a Profile file")
    return regress_stored(str(store) if store else None, baseline,
                          results=[Path(path) for path in results], checks=checks, run_noise=run_noise)


def history(*, store: Optional[str | os.PathLike] = None, device: Optional[str] = None,
            model: Optional[str] = None) -> History:
    """Every stored run of each device fingerprint and model as a series over time, with its change points:
    `rebirth history` (``rebirth.reports.history.write_history(path, history)`` writes its page).

    Args:
        store: the result store: a folder, a .sqlite file or a postgresql:// URL (default: $REBIRTH_RESULTS, else
            ./rebirth-results).
        device, model: only this device's (a name or fingerprint) and this model's runs.
    """
    from rebirth.usecases.history import history as build

    return build(str(store) if store else None, device=device, model=model)


def store(location: Optional[str | os.PathLike] = None) -> DatabaseStore:
    """The result store (``rebirth.store().runs()``, ``.frame()`` for a DataFrame of every run's summary); close
    it when done, or use it in a ``with`` block.

    Args:
        location: a folder (its rebirth.sqlite), a .sqlite file or ``postgresql://USER@HOST/DATABASE`` (default:
            $REBIRTH_RESULTS, else ./rebirth-results).
    """
    from rebirth.results import open_store

    return open_store(str(location) if location else None)


def load(path: str | os.PathLike) -> Record:
    """Any record rebirth writes (a Profile, slim.json, comparison.json, a stored run), by what it holds."""
    from rebirth.contract.loading import load_record

    return load_record(path)
