"""The headline of a comparison as short texts, so that the HTML and terminal views say the same."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rebirth.contract.slim import FIDELITY
from rebirth.reports.compare import AccuracyChange, Change, Comparison, Spread
from rebirth.reports.units import mib, ms, pct

GOOD, BAD, NEUTRAL = "good", "bad", ""


@dataclass(frozen=True)
class Fact:
    """One headline entry: a label, its main value, a detail line and whether it is good news."""

    key: str
    label: str
    value: str
    detail: str = ""
    tone: str = NEUTRAL


def headline_facts(comparison: Comparison) -> list[Fact]:
    """Speed-up (or latency alone), memory, accuracy, and where it ran; plain text, not escaped."""
    headline = comparison.headline
    compared = comparison.after is not None
    runtime = (_memory("peak_rss", "peak RSS (native runner)", headline.peak_rss, compared) if headline.native
               else _memory("model_rss", "peak RSS above idle", headline.model_rss, compared))
    facts = [_speed(comparison), _memory("planned", "planned memory", headline.planned, compared), runtime]
    if headline.weights.before is not None:
        facts.append(_memory("weights", "weights in the .pte", headline.weights, compared))
    if headline.accuracy is not None:
        facts.append(_accuracy(headline.accuracy))
    facts.append(_energy(comparison))
    facts.append(_where(comparison))
    return facts


def _energy(comparison: Comparison) -> Fact:
    """Energy per inference from the battery's gauge, before and after with their ratio, or why not."""
    energies = [profile.energy for profile in comparison.profiles]
    if any(energy is None or energy.mj_per_inference is None for energy in energies):
        why = next((energy.why_not for energy in energies if energy is not None and energy.why_not),
                   "not measured (a profile made before rebirth measured energy)")
        return Fact("energy", "energy per inference", "n/a", why)
    if len(energies) == 1:
        only = energies[0]
        assert only is not None
        return Fact("energy", "energy per inference", f"{only.mj_per_inference:.3g} mJ", only.shown())
    first, second = energies
    assert first is not None and second is not None
    before, after = first.mj_per_inference or 0.0, second.mj_per_inference or 0.0
    values = f"{before:.3g} mJ → {after:.3g} mJ"
    if not before or not first.low:
        return Fact("energy", "energy per inference", values,
                    "before's energy per inference is not told apart from 0: no ratio")
    ratio_value = after / before
    interval = ""
    if first.high and second.low is not None and second.high is not None:
        interval = f" (between {second.low / first.high:.2f}× and {second.high / first.low:.2f}×: each side's 95% CI)"
    tone = GOOD if second.high is not None and first.low and second.high < first.low else \
        BAD if second.low is not None and first.high and second.low > first.high else NEUTRAL
    return Fact("energy", "energy per inference", values,
                f"after/before {ratio_value:.2f}×{interval}, one traced run of each, from the battery's gauge", tone)


def noise_lines(comparison: Comparison) -> list[str]:
    """Each profile's noise flags, said once, with the side they belong to."""
    labels = ["before", "after"] if comparison.after is not None else [""]
    lines = [f"{label}: {reason}" if label else str(reason)
             for label, profile in zip(labels, comparison.profiles) for reason in profile.noise]
    return list(dict.fromkeys(lines))


def ratio(value: Optional[float]) -> str:
    """A ratio such as a speed-up: ``1.85×``."""
    return "n/a" if value is None else f"{value:.2f}×"


def spread(value: Spread) -> str:
    """The interval of a ratio: ``95% CI 1.80–1.90×``."""
    return f"{value.confidence * 100:.0f}% CI {value.low:.2f}–{value.high:.2f}×"


def signed_pct(value: Optional[float]) -> str:
    """A change as a signed percentage: ``-12.5%``."""
    return "n/a" if value is None else f"{value * 100:+.1f}%"


def _speed(comparison: Comparison) -> Fact:
    latency, speedup = comparison.headline.latency_p50, comparison.headline.speedup
    noisy = "; noisy, see below" if noise_lines(comparison) else ""
    if comparison.after is None:
        before = comparison.before.latency
        return Fact("latency", "latency p50", ms(before.p50),
                    f"p10 {ms(before.p10)}, p90 {ms(before.p90)}, CV {pct(before.cv)}{noisy}")
    if speedup is None:
        return Fact("speedup", "speed-up", "n/a", f"p50 {ms(latency.before)} → {ms(latency.after)}")
    if speedup.paired and speedup.noisy_runs:
        noisy += (f"; {speedup.noisy_runs} of {speedup.runs} paired runs were noisy (busy device or wide spread), "
                  "which the interval holds")
    if speedup.paired and not speedup.decided:
        return Fact("speedup", "speed-up (paired)", "undecided",
                    f"{spread(speedup)} after {speedup.runs} runs, not as narrow as asked: {speedup.reason}{noisy}",
                    NEUTRAL)
    tone = GOOD if speedup.low > 1 else BAD if speedup.high < 1 else NEUTRAL
    if speedup.paired:
        return Fact("speedup", "speed-up (paired)", ratio(speedup.value), f"{spread(speedup)}; {speedup.how}{noisy}",
                    tone)
    return Fact("speedup", "speed-up (unpaired)", ratio(speedup.value),
                f"{spread(speedup)}; p50 {ms(latency.before)} → {ms(latency.after)}; two profiles taken apart: "
                f"drift between them is not in the interval (rebirth compare measures them side by side){noisy}",
                tone)


def _memory(key: str, label: str, change: Change, compared: bool) -> Fact:
    if not compared:
        return Fact(key, label, _bytes(change.before))
    saving = change.saving
    tone = NEUTRAL if not saving else GOOD if saving > 0 else BAD
    return Fact(key, label, f"{_bytes(change.before)} → {_bytes(change.after)}",
                "" if saving is None else f"{signed_pct(-saving)} vs before", tone)


def _bytes(value: Optional[float]) -> str:
    return mib(None if value is None else int(value))


def _accuracy(accuracy: AccuracyChange) -> Fact:
    agreement = "n/a" if accuracy.agreement is None else f"{accuracy.agreement:.1f}%"
    dataset = f" on {accuracy.dataset}" if accuracy.dataset else ""
    if accuracy.metric == FIDELITY:
        value = "n/a" if accuracy.fidelity is None else f"{accuracy.fidelity:.1f}%"
        error = "" if accuracy.fidelity is None else \
            f"logits within {100 - accuracy.fidelity:.1f}% of the original's{dataset}; "
        return Fact("accuracy", "output fidelity", value,
                    f"{error}accuracy not measured: {accuracy.reason or 'the model has no trained weights'}")
    if accuracy.delta is None:
        return Fact("accuracy", "accuracy", f"agreement {agreement}",
                    f"predictions shared with the original{dataset} (no trained weights: top-1 not measured; "
                    "a model predicting one class keeps its agreement whatever is done to it)")
    tone = GOOD if accuracy.delta >= 0 else BAD
    return Fact("accuracy", "top-1 accuracy", f"{accuracy.before:.1f}% → {accuracy.after:.1f}%",
                f"{accuracy.delta:+.1f} points{dataset}; agreement with the original {agreement}", tone)


def _where(comparison: Comparison) -> Fact:
    sides = comparison.headline.sides
    device = _same_or_arrow([side.device for side in sides])
    backend = _same_or_arrow([side.backend for side in sides])
    labels = ["before", "after"] if comparison.after is not None else [""]
    gates = [f"{label}: {profile.device.cooling.shown()}" if label else profile.device.cooling.shown()
             for label, profile in zip(labels, comparison.profiles)
             if profile.device.cooling is not None and profile.device.cooling.limit_c is not None]
    return Fact("device", "device and backend", f"{device} · {backend}",
                "; ".join([_same_or_arrow([side.model for side in sides]), *gates]))


def _same_or_arrow(values: list[str]) -> str:
    return values[0] if len(set(values)) == 1 else " → ".join(values)
