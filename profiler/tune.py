"""Which run setting is best for a model on a device: backends, core sets and thread counts measured side by
side against rebirth's default (XNNPACK on the big cores, one thread per big core).

Settings that differ in threads, cores or backend cannot share one process, so each block is one run of every
setting still being measured, back to back, the default first in even blocks and last in odd ones (A B C ...,
... C B A), so that drift hits every setting alike. Each block gives each setting one ratio of its p50 over the
default's; the estimate and its interval are ``paired.interval`` of those ratios, and a setting stops once
``paired.decide`` says its ratio is known to the precision asked, or once it was more than ``CLEARLY_SLOWER``
times the default's latency in each of at least two blocks (it cannot be the best). The intervals hold for all
settings together (Bonferroni, ``each_confidence``): the best of many settings is otherwise often a fluke. The
budget (``contract.paired.Budget``) bounds the whole measurement.

Core sets come from each core's maximum frequency: the cores of one frequency are a cluster (``little``,
``mid``, ``big`` from the slowest up) and ``all`` is every core. Thread counts are pruned to 1, the powers of
two and the core set's size (every count from 1 with ``every_thread_count``); the portable backend's kernels
are single-threaded, so it is measured with one thread on each core set.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Optional

from rebirth.contract.device import CoreState
from rebirth.contract.paired import Budget, Question
from rebirth.contract.tune import DECIDED, REFERENCE, SLOWER, UNDECIDED, Setting, TunedSetting
from rebirth.devices import Device
from rebirth.profiler.measure import ProfileOptions, Program, Stage, energy_of, time_program
from rebirth.profiler.paired import CONFIDENCE, interval, lengthened

XNNPACK, PORTABLE = "xnnpack", "portable"
CLEARLY_SLOWER = 1.5
"""A setting this much slower than the default in each of its blocks (two at least) is dropped: it cannot be the
best, and measuring it further would spend the budget on an answer no one needs."""


@dataclass(frozen=True)
class CoreSet:
    name: str
    cores: tuple[int, ...]


@dataclass(frozen=True)
class Plan:
    """The settings to measure, the default they are measured against, and what a reader must know."""

    settings: tuple[Setting, ...]
    reference: Setting
    notes: tuple[str, ...] = ()


def core_sets(cores: Sequence[CoreState]) -> tuple[tuple[CoreSet, ...], tuple[str, ...]]:
    """The core sets of a device from its cores' maximum frequencies (slowest cluster first, ``all`` last), and
    a note where big and little do not apply."""
    every = tuple(sorted(core.index for core in cores))
    frequencies = {core.index: core.max_freq_khz for core in cores if core.max_freq_khz}
    if not every or len(frequencies) < len(every):
        return (CoreSet("all", every),), (f"no core reports its maximum frequency: big and little do not apply "
                                          f"here; one core set, all {len(every)} cores",)
    clusters = sorted(set(frequencies.values()))
    if len(clusters) == 1:
        return (CoreSet("all", every),), (f"all {len(every)} cores have the same maximum frequency: big and "
                                          "little do not apply here; one core set",)
    names = _cluster_names(len(clusters))
    found = tuple(CoreSet(name, tuple(index for index in every if frequencies[index] == freq))
                  for name, freq in zip(names, clusters))
    return (*found, CoreSet("all", every)), ()


def _cluster_names(count: int) -> list[str]:
    if count == 2:
        return ["little", "big"]
    if count == 3:
        return ["little", "mid", "big"]
    return ["little", *(f"mid{index}" for index in range(1, count - 1)), "big"]


def thread_counts(cores: int, every: bool = False) -> tuple[int, ...]:
    """1, the powers of two below ``cores`` and ``cores`` itself; every count from 1 with ``every``."""
    if every:
        return tuple(range(1, cores + 1))
    return tuple(sorted({*(2 ** power for power in range(cores.bit_length()) if 2 ** power <= cores), cores}))


def plan(cores: Sequence[CoreState], backends: Sequence[str], every_thread_count: bool = False) -> Plan:
    """Every setting to measure on a device with these cores, and rebirth's default among them: the first of
    ``backends`` (xnnpack when it is one) on the fastest cluster, one thread per core of it."""
    sets, notes = core_sets(cores)
    settings = [Setting(backend, core_set.name, core_set.cores, threads)
                for backend in backends for core_set in sets
                for threads in (thread_counts(len(core_set.cores), every_thread_count)
                                if backend != PORTABLE or every_thread_count else (1,))]
    big = sets[-2] if len(sets) > 1 else sets[0]
    reference = Setting(XNNPACK if XNNPACK in backends else backends[0], big.name, big.cores, len(big.cores))
    if reference not in settings:
        settings.insert(0, reference)
    counts = "every thread count" if every_thread_count else "threads 1, powers of two and the core set's size"
    said = [f"{len(settings)} settings: {', '.join(backends)} on core sets "
            f"{', '.join(f'{s.name} ({len(s.cores)})' for s in sets)}; {counts}"
            + ("; portable with 1 thread (its kernels are single-threaded)"
               if PORTABLE in backends and not every_thread_count else "")]
    return Plan(tuple(settings), reference, (*notes, *said))


@dataclass
class _Measured:
    """A setting's runs so far."""

    p50_ms: list[float] = field(default_factory=list)
    log_ratios: list[float] = field(default_factory=list)
    peak_rss: list[int] = field(default_factory=list)
    energy_mj: list[float] = field(default_factory=list)
    options: Optional[ProfileOptions] = None
    status: str = UNDECIDED


@dataclass(frozen=True)
class Tuned:
    """Every setting measured, in the plan's order, with how long it took."""

    rows: tuple[TunedSetting, ...]
    blocks: int
    seconds: float
    confidence: float
    """Each setting's interval's confidence: ``CONFIDENCE`` for all of them together (``each_confidence``)."""


def each_confidence(settings: int) -> float:
    """The confidence of each of ``settings`` intervals so that all hold together at ``CONFIDENCE`` (Bonferroni):
    the best of many settings compared with one default is otherwise often a fluke of the noise."""
    return 1 - (1 - CONFIDENCE) / max(1, settings)


Runner = Callable[[Setting, ProfileOptions], tuple[float, Optional[int], Optional[float]]]
"""Runs a setting once: its p50 (ms), peak RSS (bytes) and energy per inference (mJ) where measured."""


def measure(programs: Mapping[str, Program], device: Device, options: ProfileOptions, tuning: Plan,
            question: Question, budget: Budget, stage: Optional[Stage] = None,
            clock: Callable[[], float] = time.monotonic) -> Tuned:
    """Measure every setting of ``tuning`` against its reference on ``device``, in blocks, until each is decided
    or the budget is spent. ``programs``: the program of each backend."""
    return measure_with(_device_runner(programs, device), device, options, tuning, question, budget, stage, clock)


def measure_with(run: Runner, device: Device, options: ProfileOptions, tuning: Plan, question: Question,
                 budget: Budget, stage: Optional[Stage] = None, clock: Callable[[], float] = time.monotonic) -> Tuned:
    """``measure`` with the runs made by ``run``."""
    announce = stage or (lambda text: None)
    start, runs, blocks = clock(), 0, 0
    state = {setting: _Measured() for setting in tuning.settings}
    reference = tuning.reference
    confidence = each_confidence(len(tuning.settings) - 1)

    def active() -> list[Setting]:
        return [s for s in tuning.settings if s != reference and state[s].status == UNDECIDED]

    while active() and runs + len(active()) + 1 <= budget.max_runs and clock() - start < budget.max_seconds:
        order = [reference, *active()]
        block = _block(order if blocks % 2 == 0 else order[::-1], run, device, options, state, start,
                       budget, clock)
        if block is None:
            break
        runs += len(order)
        blocks += 1
        for setting in order[1:]:
            state[setting].log_ratios.append(math.log(block[setting] / block[reference]))
            state[setting].status = _status(state[setting].log_ratios, question, budget, confidence)
        left = active()
        announce(f"block {blocks} ({runs} runs): {len(tuning.settings) - 1 - len(left)} of "
                 f"{len(tuning.settings) - 1} settings decided")
    state[reference].status = REFERENCE
    return Tuned(tuple(_row(setting, state[setting], confidence) for setting in tuning.settings), blocks,
                 clock() - start, confidence)


def _block(order: list[Setting], run: Runner, device: Device, options: ProfileOptions,
           state: dict[Setting, _Measured], start: float, budget: Budget,
           clock: Callable[[], float]) -> Optional[dict[Setting, float]]:
    """One run of each setting in ``order``: their p50s; None when the time budget ran out part-way (the
    partial block is dropped)."""
    block: dict[Setting, float] = {}
    for setting in order:
        if block and clock() - start >= budget.max_seconds:
            return None
        measured = state[setting]
        setting_options = measured.options or replace(options, threads=setting.threads, cpu_affinity=setting.cores)
        p50, rss, energy = run(setting, setting_options)
        if measured.options is None:  # from its second run on, each setting's run lasts long enough
            measured.options = lengthened(setting_options, device, p50, lambda text: None)
        block[setting] = p50
        measured.p50_ms.append(p50)
        if rss is not None:
            measured.peak_rss.append(rss)
        if energy is not None:
            measured.energy_mj.append(energy)
    return block


def _status(log_ratios: list[float], question: Question, budget: Budget, confidence: float) -> str:
    from rebirth.profiler.paired import decide

    if len(log_ratios) >= budget.min_blocks and decide(interval(log_ratios, confidence), question) is not None:
        return DECIDED
    if len(log_ratios) >= 2 and min(log_ratios) > math.log(CLEARLY_SLOWER):  # out of the running: no need for more
        return SLOWER
    return UNDECIDED


def _row(setting: Setting, measured: _Measured, confidence: float) -> TunedSetting:
    p50 = statistics.median(measured.p50_ms) if measured.p50_ms else math.nan
    energy = statistics.median(measured.energy_mj) if measured.energy_mj else None
    rss = max(measured.peak_rss) if measured.peak_rss else None
    if measured.status == REFERENCE:
        return TunedSetting(setting, REFERENCE, len(measured.p50_ms), p50, 1.0, 1.0, 1.0, rss, energy)
    if not measured.log_ratios:
        return TunedSetting(setting, UNDECIDED, 0, p50, math.nan, 0.0, math.inf, rss, energy)
    estimate = interval(measured.log_ratios, confidence)
    return TunedSetting(setting, measured.status, len(measured.p50_ms), p50, estimate.ratio, estimate.low,
                        estimate.high, rss, energy)


def _device_runner(programs: Mapping[str, Program], device: Device) -> Runner:
    def run(setting: Setting, options: ProfileOptions) -> tuple[float, Optional[int], Optional[float]]:
        latency, result, described = time_program(programs[setting.backend], device, options)
        return latency.p50, result.peak_rss_bytes, energy_of(result, described.kind, latency.mean).mj_per_inference

    return run


def best(rows: Sequence[TunedSetting]) -> Optional[TunedSetting]:
    """The fastest setting told apart from the default as faster (its whole interval below 1), else None."""
    faster = [row for row in rows if row.faster]
    return min(faster, key=lambda row: row.ratio) if faster else None
