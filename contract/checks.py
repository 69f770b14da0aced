"""Regression checks: a threshold on one metric (``p50:5%``), what judging it found, and the one rule that
decides a latency check whatever measured it.

**The rule** (``decide``): a latency check ``METRIC:T%`` compares the 95% interval of the latency ratio, new
over baseline, with ``1 + T``: it *passes* when the interval lies below ``1 + T``, it is a *regression* when the
interval lies above, an *improvement* when it lies below ``1 / (1 + T)``, and *undecided* otherwise. The same
function judges stored runs (their interval from a block bootstrap of each run plus the run-to-run noise) and
programs measured side by side (their interval over the paired blocks, where it also decides when to stop).

Memory and the non-tensor share are one number per run: the threshold alone decides them.

Every result carries a ``code`` saying why it has its status; ``reason`` is the prose made from it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Optional

from rebirth.contract.errors import ExitStatus, InputError

PASS, IMPROVEMENT, REGRESSION = "pass", "improvement", "regression"
UNDECIDED, UNKNOWN, FAILED = "undecided", "unknown", "failed"
STATUSES = (PASS, IMPROVEMENT, REGRESSION, UNDECIDED, UNKNOWN, FAILED)
_SEVERITY = (FAILED, REGRESSION, UNDECIDED, UNKNOWN, IMPROVEMENT, PASS)
"""A verdict's status is the first of these that any of its checks has."""

LATENCY, MEMORY, SHARE = "latency", "memory", "share"
RELATIVE, POINTS = "%", "pt"
LATENCY_METRICS = ("p10", "p50", "p90", "mean", "trimmed_mean")
KINDS = {**dict.fromkeys(LATENCY_METRICS, LATENCY), "peak_rss": MEMORY, "planned": MEMORY,
         "non_tensor_share": SHARE}
ALIASES = {"planned_memory": "planned"}
DEFAULT_CHECKS = ("p50:5%", "peak_rss:5%", "non_tensor_share:+2pt")
CONFIDENCE = 0.95
_FORM = re.compile(r"(?P<metric>[a-z_0-9]+):\+?(?P<amount>\d+(?:\.\d*)?|\.\d+)(?P<unit>%|pt)", re.IGNORECASE)


@dataclass(frozen=True)
class Check:
    """A threshold on one metric: ``amount`` is a fraction for ``%`` (0.05 = 5%), else points."""

    metric: str
    amount: float
    unit: str

    def __str__(self) -> str:
        shown = self.amount * 100 if self.unit == RELATIVE else self.amount
        return f"{self.metric}:{'' if self.unit == RELATIVE else '+'}{shown:g}{self.unit}"

    @property
    def kind(self) -> str:
        """latency, memory or share."""
        return KINDS[self.metric]


def decide(low: float, high: float, threshold: float) -> tuple[str, str]:
    """The one rule of a latency check: ``(status, code)`` for the interval ``[low, high]`` of the latency ratio
    (new over baseline; above 1 is slower) against a relative ``threshold`` (0.05 for 5%)."""
    limit = 1 + threshold
    if low > limit:
        return REGRESSION, "above_threshold"
    if high < 1 / limit:
        return IMPROVEMENT, "below_inverse_threshold"
    if high < limit:
        return PASS, "below_threshold"
    return UNDECIDED, "straddles_threshold"


REASONS = {
    "above_threshold": "the {confidence:.0%} interval lies above +{threshold}",
    "below_threshold": "",
    "below_inverse_threshold": "",
    "straddles_threshold": "the {confidence:.0%} interval holds both 'within {threshold}' and 'over {threshold}'",
    "few_samples": "{samples} latency samples, at least {needed} per run needed",
    "flagged_run": "not judged: {flags} (measure again on a quiet device, or side by side with rebirth regress "
                   "--ab)",
    "no_samples": "the {side} has no latency samples",
    "no_value": "the {side} has no {what}",
    "zero_baseline": "the baseline's {what} is 0: no relative change",
    "over": "{what}",
    "within": "{what}",
    "under": "{what}",
}
"""The prose of each code (``CheckResult.reason``)."""
NOISE_SOURCES = {
    "given": "run-to-run noise {noise:.1%} as given",
    "learned": "run-to-run noise {noise:.1%} learned from {history} stored runs",
    "assumed": ("run-to-run noise assumed {noise:.0%}: {history} other stored runs, {needed} needed to learn it "
                "(rebirth regress --ab measures both side by side instead)"),
    "paired": "measured side by side",
}


@dataclass(frozen=True)
class RunNoise:
    """The run-to-run noise a stored-run latency check assumed, and where it came from (``NOISE_SOURCES``)."""

    value: float
    source: str
    history: int = 0
    needed: int = 0

    def __str__(self) -> str:
        return NOISE_SOURCES[self.source].format(noise=self.value, history=self.history, needed=self.needed)


@dataclass(frozen=True)
class CheckResult:
    """One check judged on one (baseline, current) pair.

    ``before`` and ``after`` are in the metric's unit (ms, bytes, percent of op time for shares). ``change``
    is relative (0.1 = 10% more) for ``%`` checks and in points for ``pt`` checks; ``low`` and ``high`` bound
    it (latency only); ``p_value`` is the one-sided p-value of a slowdown (stored runs).
    """

    check: Check
    status: str
    code: str
    before: Optional[float] = None
    after: Optional[float] = None
    change: Optional[float] = None
    low: Optional[float] = None
    high: Optional[float] = None
    p_value: Optional[float] = None
    detail: tuple[tuple[str, str], ...] = ()
    """Values the code's prose names (``samples``, ``side``, ``what``), as text."""
    noise: Optional[RunNoise] = None
    measured: str = ""
    """How a side-by-side measurement went (its outcome's reason), for the reader."""

    @property
    def reason(self) -> str:
        """Why the check has its status, in words."""
        values = dict(self.detail, confidence=CONFIDENCE, threshold=f"{self.check.amount * 100:g}%")
        parts = [REASONS[self.code].format(**values) if self.code in REASONS else self.code, self.measured,
                 str(self.noise) if self.noise and self.noise.source != "paired" else ""]
        return "; ".join(part for part in parts if part)


@dataclass(frozen=True)
class Verdict:
    """All checks of one model on one device, or the error of a run that failed."""

    device: str
    model: str
    results: tuple[CheckResult, ...] = ()
    error: Optional[str] = None

    @property
    def status(self) -> str:
        """``failed`` for a failed run, else the most severe status of its checks."""
        if self.error is not None:
            return FAILED
        present = {result.status for result in self.results}
        return next((status for status in _SEVERITY if status in present), PASS)

    @property
    def regressions(self) -> tuple[CheckResult, ...]:
        """The checks that regressed."""
        return tuple(result for result in self.results if result.status == REGRESSION)

    def to_dataframe(self):
        """One row per check (pandas)."""
        return verdicts_frame([self])


def verdicts_frame(verdicts: Sequence[Verdict]):
    """Every check of ``verdicts`` as a pandas DataFrame: device, model, check, status, code, before, after,
    change, low, high, reason (a failed run is one row with its error as the reason)."""
    import pandas

    rows = [dict(device=v.device, model=v.model, check=str(r.check), status=r.status, code=r.code, before=r.before,
                 after=r.after, change=r.change, low=r.low, high=r.high, reason=r.reason)
            for v in verdicts for r in v.results]
    rows += [dict(device=v.device, model=v.model, status=FAILED, code="run_failed", reason=v.error)
             for v in verdicts if v.error is not None]
    return pandas.DataFrame(rows)


def failed(device: str, model: str, error: str) -> Verdict:
    """The verdict of a run that did not produce a profile (unreachable device, runner crash)."""
    return Verdict(device=device, model=model, error=error)


def exit_code(verdicts: Sequence[Verdict]) -> ExitStatus:
    """The CLI's exit status: REGRESSION (1) when any check regressed; else NO_ANSWER (3) when any run failed or
    any check could not be judged (undecided, unknown); else OK. A regression wins because it is a finding about
    the model, whatever else went wrong."""
    statuses = {verdict.status for verdict in verdicts}
    if REGRESSION in statuses:
        return ExitStatus.REGRESSION
    return ExitStatus.NO_ANSWER if statuses & {FAILED, UNDECIDED, UNKNOWN} else ExitStatus.OK


def parse_check(text: str | Check) -> Check:
    """Parse ``METRIC:AMOUNT`` such as ``p50:5%``, ``peak_rss:3%`` or ``non_tensor_share:+2pt``.

    Raises:
        InputError: an unknown metric, a malformed amount or the wrong unit for the metric.
    """
    if isinstance(text, Check):
        return text
    match = _FORM.fullmatch(text.strip().replace(" ", ""))
    name = ALIASES.get(match["metric"].lower(), match["metric"].lower()) if match else None
    if match is None or name not in KINDS:
        raise InputError(f"bad check {text!r}: expected METRIC:AMOUNT with METRIC one of "
                         f"{', '.join([*KINDS, *ALIASES])}, e.g. p50:5%, peak_rss:3%, non_tensor_share:+2pt")
    unit, wanted = match["unit"].lower(), POINTS if KINDS[name] == SHARE else RELATIVE
    if unit != wanted:
        example = "non_tensor_share:+2pt" if wanted == POINTS else f"{name}:5%"
        raise InputError(f"bad check {text!r}: {name} takes {'points' if wanted == POINTS else 'a percentage'}, "
                         f"e.g. {example}")
    amount = float(match["amount"])
    return Check(name, amount / 100 if unit == RELATIVE else amount, unit)


def parse_checks(texts: Iterable[str | Check] = ()) -> tuple[Check, ...]:
    """Parse every check; ``DEFAULT_CHECKS`` when there are none.

    Raises:
        InputError: a check string is malformed.
    """
    return tuple(map(parse_check, texts)) or tuple(map(parse_check, DEFAULT_CHECKS))


def threshold_result(check: Check, before: float, after: float, change: float, what: str) -> CheckResult:
    """A check that one number per run decides: the change against the threshold alone."""
    if change > check.amount:
        status, code = REGRESSION, "over"
    elif change < -check.amount:
        status, code = IMPROVEMENT, "under"
    else:
        status, code = PASS, "within"
    return CheckResult(check, status, code, before, after, change, detail=(("what", what),))


def describe(result: CheckResult) -> str:
    """One line: the check, its status, the values and the reason."""
    reason = f" ({result.reason})" if result.reason else ""
    return f"{result.check}: {result.status}, {format_change(result)}{reason}"


def format_change(result: CheckResult) -> str:
    """``+12.0% [+8.1%, +16.0%]``, ``+2.5pt`` or ``n/a``."""
    if result.change is None:
        return "n/a"
    if result.check.unit == POINTS:
        return f"{result.change:+.1f}pt"
    shown = _signed_pct(result.change)
    if result.low is None or result.high is None:
        return shown
    return f"{shown} [{_signed_pct(result.low)}, {_signed_pct(result.high)}]"


def _signed_pct(fraction: float) -> str:
    return f"{fraction * 100:+.1f}%" if math.isfinite(fraction) else "n/a"
