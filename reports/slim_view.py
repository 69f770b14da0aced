"""The slimmer in the terminal: `rebirth slim --plan` and what `rebirth slim` did."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from rich.console import Console
from rich.markup import escape

from rebirth.contract.slim import (
    FIDELITY,
    PTQ,
    QAT,
    RUN,
    RUNTIME,
    TOP1,
    Allocation,
    Evidence,
    MergeRecord,
    PlannedMerge,
    QuantizationRecord,
    SlimAccuracy,
    SlimRecord,
)
from rebirth.reports.layout import NUMBER, PROSE, Column, FittedTable, Notes
from rebirth.reports.units import mib


def render_plan(plan: Sequence[PlannedMerge], console: Optional[Console] = None) -> None:
    """`rebirth slim --plan`: every candidate merge with the time the profile says it saves."""
    console = console or Console()
    table = FittedTable([Column("#", NUMBER), Column("merge"), Column("layers", PROSE), Column("exact"),
                         *(Column(header, NUMBER) for header in ("saves ms", "adds ms", "gain ms", "removes KiB"))],
                        "slimming plan (best first; applied while it saves time and the budget holds)",
                        steps=(Notes("layers"), Notes("exact"), Notes("merge")))
    for index, merge in enumerate(plan, 1):
        layers = ", ".join(merge.layers) + (f" ({merge.detail})" if merge.detail else "")
        table.add_row(str(index), merge.kind, escape(layers), "yes" if merge.exact else "learned",
                      f"{merge.saves_ms:.3f}", f"{merge.costs_ms:.3f}", f"{merge.gain_ms:+.3f}",
                      f"{merge.memory_bytes / 1024:.0f}", style="" if merge.worthwhile else "dim")
    console.print(table)


def render_slim(record: SlimRecord, console: Optional[Console] = None) -> None:
    """`rebirth slim`: the merges applied and skipped, sizes and accuracy before and after."""
    console = console or Console()
    table = FittedTable([Column("step"), Column("layers", PROSE), Column("how", PROSE),
                         *(Column(header, NUMBER) for header in STEP_NUMBERS)],
                        "steps applied (what each saved, as counted on the model; time as the profile predicts it)",
                        steps=(Notes("layers", "how"), Notes("step")))
    for merge in record.merges:
        table.add_row(merge.kind, escape(layer_list(merge.layers)), escape(step_how(merge, full=False)),
                      f"{merge.gain_ms:.3f}", *step_savings(merge))
    console.print(table)
    for skip in record.skipped:
        console.print(f"skipped {skip.kind} {escape(layer_list(skip.layers))}: {escape(skip.reason)}", highlight=False)
    console.print(f"parameters {_count(record.params.before)} -> {_count(record.params.after)}; "
                  f"MACs {_count(record.macs.before)} -> {_count(record.macs.after)}", highlight=False)
    accuracy = record.accuracy
    if accuracy and accuracy.metric == TOP1 and accuracy.before and accuracy.after:
        agreement = f"; agreement with the original {accuracy.agreement:.1f}%" if accuracy.agreement is not None else ""
        console.print(f"held-out top-1 {accuracy.before.top1:.1f}% -> {accuracy.after.top1:.1f}% on "
                      f"{escape(accuracy.dataset or '?')}{agreement}", highlight=False)
    elif accuracy and accuracy.metric == FIDELITY and accuracy.fidelity is not None:
        console.print(f"output fidelity {accuracy.fidelity:.1f}% (logits within {100 - accuracy.fidelity:.1f}% of the "
                      f"original's on {escape(accuracy.dataset or '?')})" + (
                          f"; held-out top-1 {accuracy.before.top1:.1f}% -> {accuracy.after.top1:.1f}%, not a gate"
                          if accuracy.before and accuracy.after else "; accuracy not measured"), highlight=False)
    elif accuracy and accuracy.agreement is not None:
        console.print(f"agreement with the original's predictions {accuracy.agreement:.1f}% (no trained weights)",
                      highlight=False)
    if record.quantization:
        console.print(quantization_text(record.quantization, record.accuracy), highlight=False)
    for line in technique_lines(record):
        console.print(escape(line), highlight=False)
    for message in record.messages:
        console.print(f"[yellow]note:[/] {escape(message)}", highlight=False)


STEP_NUMBERS = ("est. gain ms", "MACs saved", "weights saved", "points lost")
SHOWN_LAYERS = 4
"""A step over more layers (a channel reduction or decomposition of the whole network) shows this many in the
terminal, and how many there are; slim.json and the HTML report list them all."""


def layer_list(layers: Sequence[str]) -> str:
    """``conv1, conv2``, or ``conv1, conv2, conv3, conv4, ... (34 layers)``."""
    if len(layers) <= SHOWN_LAYERS:
        return ", ".join(layers)
    return ", ".join(layers[:SHOWN_LAYERS]) + f", ... ({len(layers)} layers)"


def step_how(merge: MergeRecord, full: bool = True) -> str:
    """``exact``, or ``learned`` with what the step did (a decomposition's ranks per layer, or with
    ``full=False`` only its summary, for a terminal)."""
    if merge.exact:
        return "exact"
    detail = merge.detail if full else merge.detail.split("; ")[0]
    return "learned" + (f": {detail}" if detail else "")


def step_savings(merge: MergeRecord) -> tuple[str, str, str]:
    """A step's MACs saved, float32 weight bytes saved and held-out points lost, as text (``-`` where unknown;
    records before schema 4 have none)."""
    macs = "-" if merge.macs_saved is None else _signed(merge.macs_saved)
    weights = "-" if merge.params_saved is None else (
        ("-" if merge.params_saved < 0 else "") + mib(abs(merge.params_saved) * 4))
    lost = merge.points_lost
    return macs, weights, "-" if lost is None else f"{lost:+.2f}"


def evidence_text(evidence: Optional[Evidence]) -> str:
    """What keeping a step rested on: ``0.44 [-0.2, 1.1], at most 0.95 at 95%, 3 changed, 0.05 left`` (points lost
    against the original, their 95% interval, the bound the budget held them to, held-out predictions changed, the
    budget left), or ``-``."""
    if evidence is None:
        return "-"
    bounded = evidence.low is not None and evidence.high is not None
    interval = f" [{evidence.low:+.1f}, {evidence.high:+.1f}]" if bounded else ""
    bound = f", at most {evidence.bound:.2f} at {100 * evidence.confidence:g}%" \
        if evidence.bound is not None and evidence.confidence is not None else ""
    changed = f", {evidence.changed} changed" if evidence.changed is not None else ""
    return f"{evidence.lost:+.2f}{interval}{bound}{changed}, {evidence.budget_left:.2f} left"


def _signed(value: int) -> str:
    return f"{value:,}" if value >= 0 else f"-{-value:,}"


def quantization_text(step: QuantizationRecord, accuracy: Optional[SlimAccuracy]) -> str:
    """One line on the quantization step (plain text: escape it for HTML or rich markup)."""
    measure = "fidelity" if accuracy and accuracy.metric == FIDELITY else "held-out top-1"
    simulated = "" if step.quality_after is None else f"{step.quality_after:.1f}% in PyTorch"
    ran = "" if step.runtime_quality is None else f"{step.runtime_quality:.1f}% as ExecuTorch's runtime runs it"
    quality = ("" if step.quality_before is None or not (simulated or ran) else
               f"{measure} {step.quality_before:.1f}% -> {', '.join(part for part in (simulated, ran) if part)}")
    if not step.applied:
        learned = step.attempt(QAT)
        return f"not quantized to {step.scheme}: {step.reason or 'no reason recorded'}" + (
            f" ({quality}{'; ' + attempts_text(step) if learned else ''})" if quality else "")
    weights = ("" if not step.weight_bytes_before or not step.weight_bytes_after else
               f"; weights in the .pte {mib(step.weight_bytes_before)} -> {mib(step.weight_bytes_after)} "
               f"({step.weight_bytes_before / step.weight_bytes_after:.1f}x smaller)")
    how = (f"calibrated on {step.calibration_samples} training samples (post-training quantization)"
           if step.method != QAT else attempts_text(step))
    return (f"quantized to {step.scheme}: {len(step.layers)} layers, {how}; {quality}{weights}; slim-float.pte is the "
            "same model unquantized")


def attempts_text(step: QuantizationRecord) -> str:
    """How quantization-aware training went, against post-training int8: ``learned in int8 by quantization-aware
    training, 75 steps in 12.3 s: 0.22 points lost as the runtime ran it, post-training int8 lost 0.67 (as the
    runtime ran it)``; empty when it did not run."""
    learned, calibrated = step.attempt(QAT), step.attempt(PTQ)
    if learned is None:
        return ""
    after = f"learned in int8 by quantization-aware training, {learned.steps} steps in {learned.seconds:.1f} s: " \
        f"{learned.lost:.2f} points lost {_where(learned.judged)}"
    return after + ("" if calibrated is None else
                    f", post-training int8 lost {calibrated.lost:.2f} ({_where(calibrated.judged)})")


def _where(judged: str) -> str:
    return "as the runtime ran it" if judged == RUNTIME else "in PyTorch's simulation"


def technique_lines(record: SlimRecord) -> list[str]:
    """What each technique bought and how the budget was shared (plain text), from the allocation of a record of
    version 7 or later; none for older records."""
    allocation = record.allocation
    if allocation is None:
        return []
    lines = ["each technique: " + "; ".join(_bought(record, estimate.name, estimate.status, estimate.reason)
                                            for estimate in allocation.techniques)]
    return lines + allocation_lines(allocation)


def _bought(record: SlimRecord, name: str, status: str, reason: str) -> str:
    if status != RUN:
        return f"{name} not run ({reason})"
    quantized = record.quantization
    if name == "int8" and quantized is not None:
        after = quantized.runtime_quality if quantized.runtime_quality is not None else quantized.quality_after
        own = quantized.quality_before - after if quantized.quality_before is not None and after is not None else None
        return f"int8 {'kept' if quantized.applied else 'not kept'}" + (f" ({_points(own)})" if own is not None
                                                                        else "")
    steps = [merge for merge in record.merges if (merge.kind if merge.kind in COMPRESSIONS else "merges") == name]
    if not steps:
        return f"{name} made nothing"
    lost = sum(merge.points_lost or 0.0 for merge in steps)
    return (f"{name} ~{sum(merge.gain_ms for merge in steps):.2f} ms in {len(steps)} step"
            f"{'s' if len(steps) > 1 else ''}, {_points(lost)}")


def _points(lost: float) -> str:
    """What a technique's own steps did to the quality they received, in words: a sign alone read both ways."""
    if round(lost, 2) == 0:
        return "no points lost"
    return f"{lost:.2f} points lost" if lost > 0 else f"{-lost:.2f} points gained"


COMPRESSIONS = ("reduce_channels", "low_rank")
"""The kinds of the compression steps' records (each is its technique's name); every other kind is a merge."""


def allocation_lines(allocation: Allocation) -> list[str]:
    """How the budget was shared, each revisit, and what the profile predicts of the kept steps (plain text)."""
    lines = [f"budget {allocation.budget:g} points: {allocation.rule}"]
    for revisit in allocation.revisits:
        lines.append(f"revisit: int8 on the model before {', '.join(revisit.dropped)} (~{revisit.speedup_with:.2f}x "
                     f"predicted, against ~{revisit.speedup_without:.2f}x without int8): "
                     + ("kept, the compressions after it undone" if revisit.kept else f"not kept ({revisit.reason})"))
    if allocation.estimated_speedup is not None:
        lines.append(f"the profile predicts ~{allocation.estimated_speedup:.2f}x for the kept steps together (int8 "
                     f"at {allocation.int8_speedup:g}x on conv and linear layers)")
    return lines


def _count(value: Optional[int]) -> str:
    return "?" if value is None else f"{value:,}"
