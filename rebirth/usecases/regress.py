"""`rebirth regress`: results judged against a baseline, from the result store or measured side by side.

Both modes give one ``Verdict`` per device and model, and decide every latency check with the same rule
(``rebirth.contract.checks.decide``): stored runs from the interval of their two runs (plus the run-to-run
noise, learned from the store), ``--ab`` from the interval of paired blocks measured until it is decided.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from rebirth.contract.checks import LATENCY, Check, RunNoise, Verdict, failed, parse_checks
from rebirth.contract.errors import InputError
from rebirth.contract.paired import Budget, Question
from rebirth.contract.profile import Profile
from rebirth.contract.stored import Key, StoredRun
from rebirth.devices import Device
from rebirth.profiler import ProfileOptions, prepare
from rebirth.profiler.checks import RUN_NOISE, judge, judge_paired, spread_of
from rebirth.profiler.measure import DEFAULT_BACKEND
from rebirth.profiler.paired import PairedResult, compare_programs
from rebirth.usecases.farm import FarmListener, FarmSession, Targets

MIN_HISTORY = 3
"""Stored runs of a device and model needed to learn their run-to-run noise."""
UNKNOWN_RUN_NOISE = 0.10
"""The run-to-run noise assumed until it can be learned: runs minutes apart on a busy farm drifted by ~10%."""


def regress_stored(store: Optional[str], baseline: str, *, results: Sequence[Path] = (),
                   checks: Iterable[str | Check] = (), run_noise: Optional[float] = None,
                   device: Optional[str] = None, model: Optional[str] = None) -> list[Verdict]:
    """Every device and model of ``results`` (Profile files, stored runs or stores; by default the store's
    latest farm run) judged against ``baseline`` (a saved baseline's name, a file store's baseline folder, or a
    Profile file). A baseline device and model with no result is a failed run. The run-to-run noise of a device
    and model is ``run_noise`` if given, else learned from their other stored runs (at least ``MIN_HISTORY``),
    else assumed large (``UNKNOWN_RUN_NOISE``); each latency check says which. Runs flagged noisy
    (``Profile.noise``) are left out of what is learned, and a latency check of a flagged run is undecided
    (``judge_latency``). Only the judged runs' Profiles are read; the noise is learned from the runs' summaries.
    ``device`` (a name or fingerprint) and ``model`` (a model key, or the model as named) judge only theirs.

    Raises:
        InputError: a bad check, baseline or result, or nothing to judge.
    """
    from rebirth.results import baseline_profiles, open_store, results_to_judge, runs_to_judge

    wanted = parse_checks(checks)
    with open_store(store) as opened:
        reference = {key: profile for key, profile in baseline_profiles(opened, baseline, device, model).items()
                     if _wanted(key, profile, device, model)}
        stored = opened.runs(device, model)
        current = [(key, profile) for key, profile in (
            results_to_judge(results, opened, device, model) if results
            else [(run.key, run.profile) for run in runs_to_judge(stored)])
            if _wanted(key, profile, device, model)]
        history = _history(stored) if run_noise is None else {}
    verdicts = [judge(reference[key], profile, wanted, _noise(key, profile, history, run_noise))
                if key in reference
                else failed(profile.device.name, key[1], f"no baseline for this device and model in {baseline}")
                for key, profile in current]
    judged = {key for key, _ in current}
    verdicts += [failed(profile.device.name, key[1], "no result: the run failed or was not made")
                 for key, profile in reference.items() if key not in judged]
    if not verdicts:
        raise InputError("nothing to judge: no results and an empty baseline")
    return verdicts


def _wanted(key: Key, profile: Profile, device: Optional[str], model: Optional[str]) -> bool:
    if device is not None and device not in (key[0], profile.device.name):
        return False
    return model is None or model in (key[1], key[1].rpartition("@")[0])


def _history(runs: Iterable[StoredRun]) -> dict[Key, list[StoredRun]]:
    """The store's runs by device and model, read once for every result judged."""
    grouped: dict[Key, list[StoredRun]] = defaultdict(list)
    for run in runs:
        grouped[run.key].append(run)
    return grouped


def _noise(key: Key, current: Profile, history: dict[Key, list[StoredRun]], given: Optional[float]) -> RunNoise:
    """The run-to-run noise to judge ``current`` with, and where it comes from."""
    if given is not None:
        return RunNoise(given, "given")
    others = [run.summary.p50_ms for run in history.get(key, ())
              if not _is(run, current) and not run.summary.noise and run.summary.p50_ms > 0]
    if len(others) < MIN_HISTORY:  # runs flagged noisy teach nothing of the device's run-to-run noise
        return RunNoise(UNKNOWN_RUN_NOISE, "assumed", len(others), MIN_HISTORY)
    return RunNoise(max(RUN_NOISE, spread_of(others)), "learned", len(others))


def _is(run: StoredRun, profile: Profile) -> bool:
    """Whether ``run`` is the stored run of ``profile`` (the same device, time of measurement and p50)."""
    return (run.device == profile.device.name and run.summary.p50_ms == profile.latency.p50
            and run.model_sha256 == profile.model.sha256)


@dataclass(frozen=True)
class SideBySide:
    """`rebirth regress --ab`: a baseline and a candidate program, measured side by side on every target."""

    baseline: str
    candidate: str
    targets: Targets
    options: ProfileOptions = field(default_factory=ProfileOptions)
    budget: Budget = field(default_factory=Budget)


def regress_side_by_side(request: SideBySide, checks: Iterable[str | Check], listener: FarmListener) -> list[Verdict]:
    """Export both programs once, then on every target at once run them alternately until the latency check is
    decided (or the budget spent: undecided); memory and the non-tensor share from one traced run of each.

    Raises:
        InputError: a bad check (one latency check, on p50), or a model cannot be read or exported.
        Interrupted: Ctrl-C or SIGTERM, once every device stopped.
    """
    wanted = parse_checks(checks)
    latency = [check for check in wanted if check.kind == LATENCY]
    if len(latency) != 1 or latency[0].metric != "p50":
        raise InputError("--ab judges one latency check, on p50 (e.g. --fail p50:5%), beside memory and share checks")
    question = Question(threshold=latency[0].amount)
    with FarmSession(request.targets, listener) as session:
        backend = request.options.backend or DEFAULT_BACKEND  # one export for every device: not per device
        a, b = prepare(request.baseline, backend), prepare(request.candidate, backend)

        def job(device: Device) -> PairedResult:
            name = device.name
            return compare_programs(a, b, device, request.options, question, request.budget,
                                    lambda stage, done, total: listener.progress(name, stage, done, total),
                                    lambda stage: listener.stage(name, stage))

        runs = session.run(job)
    return [judge_paired(run.result.comparison, run.result.a, run.result.b, wanted) if run.result is not None
            else failed(run.device, request.candidate, run.error or "failed") for run in runs]
