"""The one accuracy budget shared across the techniques by what each buys per point, with a revisit.

The merges run first (the paper's technique; they also take out what int8 cannot run, such as LRN). Then int8's
post-training cost is probed on the merged model (PyTorch's simulation: one calibration and one pass over the
held-out samples, no lowering), and what each technique would buy is estimated from the profile: a compression
from its offers, int8 from the conv and linear layers' time at ``INT8_SPEEDUP``. When int8 buys more per point
than the compressions would with what it leaves them, its cost is held back from them: they are judged within the
budget less that reserve. int8 runs last on the whole budget. If it is still refused for lack of budget an earlier
compression spent, it is tried on the model from before the last compression, then the one before, as long as the
profile says that combination is faster than the compressions without int8; the first one within the budget
stands and the compressions after it are undone. Every decision is still the judge's (``Evidence.within``).
A replayed plan (``SlimOptions.replay``) shares nothing: its steps are tried in its order on the whole budget.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Optional

from torch import fx

from rebirth.contract.slim import SLIM, TOP1, Allocation, Evidence, MergeRecord, Revisit, SkipRecord, TechniqueEstimate
from rebirth.models.lowering import Lowering
from rebirth.slimmer.cost import layer_macs
from rebirth.slimmer.judge import Judge
from rebirth.slimmer.steps import Considered, Step, StepContext, StepResult

INT8_SPEEDUP = 2.0
"""What int8 kernels are assumed to make of the conv and linear layers' time: XNNPACK's int8 programs ran the
-small zoo nets 1.2-2.1x faster whole on this host (AVX2, no dot-product) and GoogLeNet 2.4x; ARM phones with
dot-product gain more. A fixed prior, so the allocation does not move with a timing's noise."""

BASE, PROBED = "merges", "int8"
"""The technique run before the allocation (with any registered before it), and the one probed before the others
spend the budget (run last); every other technique is a compression between them, in ``STEPS`` order."""


@dataclass(frozen=True)
class Made:
    """A step that ran: the model it received, that model's quality, and what it did."""

    name: str
    before: fx.GraphModule
    quality_before: Optional[float]
    outcome: StepResult


@dataclass(frozen=True)
class Allocated:
    """What the allocated steps did, in order, and how the budget was shared."""

    made: tuple[Made, ...]
    allocation: Allocation
    lowering: Optional[Lowering] = None
    """The worker lowering the float programs, if int8 ran: its caller closes it once the programs are written."""


def run_allocated(considered: Sequence[Considered], model: fx.GraphModule, judge: Optional[Judge],
                  context: StepContext) -> Allocated:
    """Run every step ``considered`` makes on ``model``, in order, the budget shared as the module says."""
    names = [item.name for item in considered]
    base_at = names.index(BASE) if BASE in names else -1
    head = [item.step for at, item in enumerate(considered) if item.step is not None and at <= base_at]
    compressions = [item.step for at, item in enumerate(considered)
                    if item.step is not None and at > base_at and item.name != PROBED]
    last = [item.step for item in considered if item.step is not None and item.name == PROBED]
    lowering = Lowering(context.options.backend) if last and judge is not None and context.lessons is not None \
        else None
    try:
        found = _allocated(considered, model, judge, dataclasses.replace(context, lowering=lowering), head,
                           compressions, last)
    except BaseException:
        if lowering is not None:
            lowering.close()
        raise
    return dataclasses.replace(found, lowering=lowering)


def _allocated(considered: Sequence[Considered], model: fx.GraphModule, judge: Optional[Judge], context: StepContext,
               head: list[Step], compressions: list[Step], last: list[Step]) -> Allocated:
    made: list[Made] = []
    for step in head:
        model, context = _run(step, model, judge, context, made)
    replay = context.options.replay
    if replay is not None:  # the recorded plan decides what is tried: no probe, no reserve, no revisit
        for step in compressions:
            model, context = _run(step, model, judge, context, made)
        for step in last:
            _lower_behind(made, context)
            model, context = _run(step, model, judge, context, made)
        budget = judge.budget if judge is not None else context.options.max_accuracy_drop
        return Allocated(tuple(made), Allocation(budget, rule=f"replayed from {replay.source}: the steps it kept, in "
                                                 "its order, each judged again", int8_speedup=INT8_SPEEDUP,
                                                 estimated_speedup=kept_speedup(made, context)))
    allocation = share(considered, model, judge, context, compressions, bool(last))
    judged = judge
    if judge is not None and allocation.reserved > 0:
        judged = dataclasses.replace(judge, budget=judge.budget - allocation.reserved)
    for step in compressions:
        model, context = _run(step, model, judged, context, made)
    for step in last:
        _lower_behind(made, context)
        model, context = _run(step, model, judge, context, made)
        if judge is not None and _short_of_budget(made[-1].outcome):
            made, revisits = revisit(step, made, judge, context, len(head))
            allocation = dataclasses.replace(allocation, revisits=revisits)
    return Allocated(tuple(made), dataclasses.replace(allocation, estimated_speedup=kept_speedup(made, context)))


def _lower_behind(made: Sequence[Made], context: StepContext) -> None:
    """Hand the programs the steps so far offered (each technique's model, written where a later one changed it)
    to the lowering worker, to be lowered while int8's program is lowered here (``Lowering.later``)."""
    lowering = context.lowering
    if lowering is None:
        return
    for item in made:
        for program in item.outcome.programs:
            if program.lowered is None and program.role != SLIM:
                lowering.later(id(program.model), partial(program.export, context.example_inputs), program.model)


def _run(step: Step, model: fx.GraphModule, judge: Optional[Judge], context: StepContext,
         made: list[Made]) -> tuple[fx.GraphModule, StepContext]:
    outcome = step.run(model, judge, context)
    made.append(Made(step.name, model, context.quality, outcome))
    if outcome.quality is not None:
        context = dataclasses.replace(context, quality=outcome.quality)
    return outcome.model, context


def share(considered: Sequence[Considered], model: fx.GraphModule, judge: Optional[Judge], context: StepContext,
          compressions: Sequence[Step], int8: bool) -> Allocation:
    """How the budget left after the merges is shared between the compressions and int8 (probed on ``model``)."""
    gains = {step.name: offered_gain(step, model, context) for step in compressions}
    if int8:
        gains[PROBED] = tensor_ms(model, context) * (1 - 1 / INT8_SPEEDUP)
    budget = judge.budget if judge is not None else context.options.max_accuracy_drop
    if judge is None or context.lessons is None or context.quality is None:
        return Allocation(budget, techniques=_estimates(considered, gains, None), int8_speedup=INT8_SPEEDUP,
                          rule="no data to judge by: exact merges only")
    spent = judge.lost(context.quality)
    probe = probe_int8(model, judge, context) if int8 else None
    cost = None if probe is None else max(0.0, probe.held - spent)
    reserved, rule = reserve(judge.budget - spent, gains, cost, probe)
    if spent < 0:
        rule += (f" (the budget left counts the {-spent:.2f} points the merges gained by estimate; every step is "
                 "still kept only on the bound of what it loses against the original)")
    context.say(f"budget: {rule}")
    return Allocation(budget, spent, reserved, rule, _estimates(considered, gains, cost), probe,
                      int8_speedup=INT8_SPEEDUP)


def reserve(left: float, gains: dict[str, float], cost: Optional[float],
            probe: Optional[Evidence]) -> tuple[float, str]:
    """The points held back from the compressions for int8 (of ``left``, the budget after the merges), and why:
    int8's probed ``cost`` (at least one held-out sample's worth, what the judge can tell) when int8 buys more
    per point than the compressions would with what that leaves them."""
    int8_gain = gains.get(PROBED)
    squeezed = sum(gain for name, gain in gains.items() if name != PROBED)
    if int8_gain is None:
        return 0.0, f"no int8: the compressions share the {left:.2f} points left after the merges"
    if probe is None or cost is None:
        return 0.0, "the quantizer refused the merged model: the compressions get the budget, int8 is tried last"
    if not probe.within:
        return 0.0, (f"post-training int8 on the merged model: {probe.said}, over the "
                     f"{probe.budget:g} budget: the compressions get the budget, int8 is tried last")
    held = min(left, max(cost, 100 / probe.samples if probe.measure == TOP1 else 0.0))
    per_int8, per_squeeze = int8_gain / max(held, 1e-6), squeezed / max(left - held, 1e-6)
    floor = f", held as {held:.2f}: one held-out sample at least" if held > cost else ""
    said = (f"int8 buys ~{int8_gain:.2f} ms for {cost:.2f} points on the merged model{floor}; the compressions up "
            f"to ~{squeezed:.2f} ms for the {max(left - held, 0.0):.2f} points it leaves")
    if squeezed <= 0 or per_int8 >= per_squeeze:
        return held, f"{said}: {held:.2f} of the {left:.2f} points left are held for int8"
    return 0.0, f"{said}: the compressions buy more per point and get the {left:.2f} points left first"


def revisit(step: Step, made: list[Made], judge: Judge, context: StepContext,
            first: int) -> tuple[list[Made], tuple[Revisit, ...]]:
    """int8 (``made``'s last step, refused for lack of budget) tried on the model from before each kept
    compression (``made[first:-1]``), the last first, while the profile says that is faster than the compressions
    without int8; the steps with the first one kept, and every try."""
    refused, kept = made[-1], made[:-1]
    without = estimated_speedup(context, refused.before, _records(kept), int8=False)
    tries: list[Revisit] = []
    for index in reversed([i for i, item in enumerate(kept) if i >= first and item.outcome.merges]):
        base, dropped = kept[index], tuple(item.name for item in kept[index:] if item.outcome.merges)
        with_int8 = estimated_speedup(context, base.before, _records(kept[:index]), int8=True)
        if with_int8 <= without:
            tries.append(Revisit(dropped, without, with_int8, False, "the profile predicts no gain over the "
                                 "compressions without int8"))
            break
        context.say(f"revisit: int8 on the model before {', '.join(dropped)} (~{with_int8:.2f}x predicted, "
                    f"against ~{without:.2f}x without int8)")
        again = step.run(base.before, judge, dataclasses.replace(context, quality=base.quality_before))
        quantized = again.quantization
        if quantized is not None and quantized.applied:
            tries.append(Revisit(dropped, without, with_int8, True, "int8 is within the budget on that model"))
            return kept[:index] + _undone(kept[index:]) + [Made(step.name, base.before, base.quality_before,
                                                                 again)], tuple(tries)
        tries.append(Revisit(dropped, without, with_int8, False, (quantized.reason or "") if quantized else ""))
    return made, tuple(tries)


def _undone(made: Sequence[Made]) -> list[Made]:
    """``made`` undone by a revisit: each keeps its model unchanged, its records turned into skipped ones."""
    undone = []
    for item in made:
        skipped = tuple(SkipRecord(merge.kind, merge.layers, f"undone: int8 on the model before it buys more within "
                                   f"the budget ({merge.detail})", "revisited", merge.evidence)
                        for merge in item.outcome.merges)
        undone.append(dataclasses.replace(item, outcome=StepResult(item.before, skipped=skipped +
                                                                  item.outcome.skipped)))
    return undone


def _short_of_budget(outcome: StepResult) -> bool:
    quantized = outcome.quantization
    return quantized is not None and not quantized.applied and (quantized.code or "").startswith("over_budget")


def _records(made: Iterable[Made]) -> list[MergeRecord]:
    return [merge for item in made for merge in item.outcome.merges]


def probe_int8(model: fx.GraphModule, judge: Judge, context: StepContext) -> Optional[Evidence]:
    """Post-training int8 of ``model`` judged in PyTorch's simulation (None: the quantizer refused it)."""
    from rebirth.slimmer import quantize

    assert context.lessons is not None
    try:
        quantized = quantize.quantize_int8(model, context.example_inputs,
                                           context.lessons.calibration)
    except Exception:  # the int8 step says why when it runs
        return None
    return judge.examine(quantized.module)


def offered_gain(step: Step, model: fx.GraphModule, context: StepContext) -> float:
    """What the profile says ``step`` saves on ``model`` at its strongest worthwhile offer per layer, in ms."""
    best: dict[str, float] = {}
    for candidate, _ in step.offers(model, context):
        if candidate.worthwhile:
            layer = candidate.match.layers[-1]
            best[layer] = max(best.get(layer, 0.0), candidate.gain_ms)
    return sum(best.values())


def tensor_ms(model: fx.GraphModule, context: StepContext) -> float:
    """The profile's time of ``model``'s conv and linear layers, each scaled by its MACs now over then."""
    then = context.original_macs
    return sum(context.times.get(layer, 0.0) * macs / then[layer]
               for layer, macs in layer_macs(model, context.example_inputs).items() if then.get(layer))


def estimated_speedup(context: StepContext, model: fx.GraphModule, records: Iterable[MergeRecord],
                      int8: bool) -> float:
    """The profile's estimate of the original's time over that of ``model`` (``records`` made it), with int8."""
    total = sum(context.times.values())
    after = total - sum(record.gain_ms for record in records)
    if int8:
        after -= tensor_ms(model, context) * (1 - 1 / INT8_SPEEDUP)
    return total / max(after, 1e-3 * total) if total > 0 else 1.0


def kept_speedup(made: Sequence[Made], context: StepContext) -> Optional[float]:
    """The profile's estimate of the speed-up of what ``made`` kept (None: no profile times)."""
    if not made or not context.times:
        return None
    quantized = next((item.outcome.quantization for item in reversed(made) if item.outcome.quantization), None)
    return estimated_speedup(context, made[-1].outcome.model, _records(made),
                             int8=quantized is not None and quantized.applied)


def _estimates(considered: Sequence[Considered], gains: dict[str, float],
               int8_cost: Optional[float]) -> tuple[TechniqueEstimate, ...]:
    return tuple(TechniqueEstimate(item.name, item.status, item.reason, gains.get(item.name),
                                   int8_cost if item.name == PROBED else None) for item in considered)
