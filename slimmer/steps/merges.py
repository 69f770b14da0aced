"""The merges (DeepRebirth): every exact and learned merge the passes find, applied one at a time, best first by
what the profile says it saves, each learned one fine-tuned and kept only within the budget; then, where the
learned merges lost points against the original, the whole model fine-tuned once more, kept if that helps."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

from torch import fx

from rebirth.contract.slim import ABOUT, MERGED, Evidence, MergeRecord, SkipRecord
from rebirth.slimmer.cost import layer_macs, parameters
from rebirth.slimmer.finetune import fit_block, fit_end_to_end
from rebirth.slimmer.judge import Judge
from rebirth.slimmer.passes import SlimPass
from rebirth.slimmer.plan import Candidate, candidates, make_passes
from rebirth.slimmer.steps.base import Lessons, Program, StepContext, StepResult


@dataclass
class _Progress:
    """The merges so far: the model, its quality, its size, what was applied, skipped and rejected."""

    model: fx.GraphModule
    quality: Optional[float]
    macs: int
    params: int
    merges: list[MergeRecord]
    skipped: list[SkipRecord]
    rejected: set[tuple[str, tuple[str, ...], str]]


class MergeStep:
    name = "merges"

    def offers(self, model: fx.GraphModule, context: StepContext) -> list[tuple[Candidate, SlimPass]]:
        return self._ranked(model, context, context.options.exact_only)

    def run(self, model: fx.GraphModule, judge: Optional[Judge], context: StepContext) -> StepResult:
        """Apply the best merge, rank again on the new graph, until none is left that saves time (exact merges
        only without a judge)."""
        exact_only = context.options.exact_only or judge is None
        inputs = context.example_inputs
        state = _Progress(model, context.quality, sum(layer_macs(model, inputs).values()), parameters(model), [], [],
                          set())
        if context.options.replay is not None:
            self._replay(state, judge, context, exact_only)
        else:
            for _ in range(context.options.max_merges):
                if not self._merge_best(state, judge, context, exact_only):
                    break
        if judge is not None and any(not merge.exact for merge in state.merges):
            assert context.lessons is not None and state.quality is not None
            if judge.lost(state.quality) > 0:
                self._tune_whole(state, judge, context.lessons, context)
        return StepResult(state.model, state.quality, tuple(state.merges), tuple(state.skipped),
                          programs=(Program(MERGED, state.model, about=ABOUT[MERGED]),))

    def _ranked(self, model: fx.GraphModule, context: StepContext, exact_only: bool) -> list[tuple[Candidate,
                                                                                               SlimPass]]:
        return candidates(model, make_passes(context.example_inputs, exact_only), context.times,
                          context.example_inputs, context.original_macs)

    def _merge_best(self, state: _Progress, judge: Optional[Judge], context: StepContext, exact_only: bool) -> bool:
        """Try the best merge left; False when none is worth trying."""
        least = context.least_gain_ms
        ranked = [(c, p) for c, p in self._ranked(state.model, context, exact_only)
                  if c.worthwhile and _identity(c) not in state.rejected]
        small = [c for c, _ in ranked if not c.match.exact and c.gain_ms < least]
        ranked = [(c, p) for c, p in ranked if c.match.exact or c.gain_ms >= least]
        if not ranked:
            state.skipped.extend(SkipRecord(c.match.kind, c.match.layers, f"saves ~{c.gain_ms:.3f} ms, under the "
                                            f"{100 * context.options.min_gain:g}% of the measured time worth "
                                            "fine-tuning for", "small_gain") for c in small)
            return False
        self._make(state, *ranked[0], judge, context)
        return True

    def _replay(self, state: _Progress, judge: Optional[Judge], context: StepContext, exact_only: bool) -> None:
        """Make the merges a recorded plan kept, in its order, each found on the model as it is by then; one the
        model no longer offers is skipped."""
        replay = context.options.replay
        assert replay is not None
        for wanted in replay.merge_order(slim_pass.kind for slim_pass in make_passes(context.example_inputs)):
            found = [(c, p) for c, p in self._ranked(state.model, context, exact_only) if _identity(c) == wanted]
            if not found:
                kind, layers, detail = wanted
                state.skipped.append(SkipRecord(kind, layers, f"the plan's merge ({replay.source}) is not offered by "
                                                "this model" + (f" ({detail})" if detail else ""), "not_in_model"))
                why = " (without data, only exact merges are made)" if exact_only else ""
                context.say(f"not replayed: {kind} {', '.join(layers)}: this model does not offer it{why}")
                continue
            self._make(state, *found[0], judge, context)

    def _make(self, state: _Progress, candidate: Candidate, slim_pass: SlimPass, judge: Optional[Judge],
              context: StepContext) -> None:
        """Apply ``candidate``; a learned one is fine-tuned and kept only within the budget."""
        trial = slim_pass.apply(copy.deepcopy(state.model), candidate.match)
        evidence = None
        if not candidate.match.exact:
            assert judge is not None and context.lessons is not None, "learned merges are only planned with data"
            evidence = self._learn(trial, candidate, slim_pass, state, judge, context)
            if evidence is None:
                return
        self._keep(state, trial, candidate, slim_pass, evidence, context)

    def _learn(self, trial: fx.GraphModule, candidate: Candidate, slim_pass: SlimPass, state: _Progress, judge: Judge,
               context: StepContext) -> Optional[Evidence]:
        """Fine-tune what the merge regenerated: the block, then, if that is not enough, the whole model. What it
        was judged on, or None (recorded as skipped) when it stays over the budget."""
        lessons, options = context.lessons, context.options
        assert lessons is not None
        match = candidate.match
        source = state.model if slim_pass.learns_from_current else lessons.teacher
        fit_block(trial, source, match.anchors, match.regenerated, lessons.batches, options.block_steps, options.seed,
                  context.progress)
        evidence = judge.fitting(trial)
        if evidence is None:  # the block alone did not recover: all layers
            fit_end_to_end(trial, lessons.logits, options.end_to_end_steps, options.seed, lessons.labels,
                           context.progress)
            evidence = judge.examine(trial)
        if evidence.within:
            return evidence
        state.rejected.add(_identity(candidate))
        detail = f" ({match.detail})" if match.detail else ""
        state.skipped.append(SkipRecord(match.kind, match.layers, f"{evidence.said}, over the {judge.budget} "
                                        f"budget{detail}", "over_budget", evidence))
        context.say(f"skipped {match.kind} {', '.join(match.layers)}{detail}: {evidence.said}")
        return None

    def _keep(self, state: _Progress, trial: fx.GraphModule, candidate: Candidate, slim_pass: SlimPass,
              evidence: Optional[Evidence], context: StepContext) -> None:
        quality = evidence.quality if evidence is not None else None
        macs, params = sum(layer_macs(trial, context.example_inputs).values()), parameters(trial)
        state.merges.append(_record(candidate, slim_pass, evidence, state.quality if quality is not None else None,
                                    state.macs - macs, state.params - params))
        state.model, state.macs, state.params = trial, macs, params
        if quality is not None:
            state.quality = quality  # exact merges keep it
        context.say(f"merged {candidate.match.kind} {', '.join(candidate.match.layers)} (saves "
                    f"~{candidate.gain_ms:.2f} ms" + (f", quality {quality:.1f})" if quality is not None else ")"))

    def _tune_whole(self, state: _Progress, judge: Judge, lessons: Lessons, context: StepContext) -> None:
        """All layers learn once more after learned merges that lost points; kept if that does not lower the
        quality. Where the merges lost nothing there is nothing to win back, and the check of the tuning (a
        held-out pass, 15 s of full GoogLeNet at 224 px) is spared: the compressions after the merges fine-tune
        every layer again anyway."""
        assert state.quality is not None
        options = context.options
        tuned = copy.deepcopy(state.model)
        fit_end_to_end(tuned, lessons.logits, options.end_to_end_steps, options.seed, lessons.labels,
                       context.progress)
        quality = judge.quality(tuned)
        kept = quality >= state.quality
        context.say(f"fine-tuned the whole merged model: quality {state.quality:.1f} -> {quality:.1f} "
                    f"({'kept' if kept else 'not kept'})")
        if kept:
            state.model, state.quality = tuned, quality


def _identity(candidate: Candidate) -> tuple[str, tuple[str, ...], str]:
    """What a rejected merge is remembered by: the same layers at other ranks may still be tried."""
    return candidate.match.kind, candidate.match.layers, candidate.match.detail


def _record(candidate: Candidate, slim_pass: SlimPass, evidence: Optional[Evidence], quality_before: Optional[float],
            macs_saved: int, params_saved: int) -> MergeRecord:
    match = candidate.match
    removed = match.removed if slim_pass.deletes_layers else ()
    return MergeRecord(match.kind, match.layers, match.exact, match.regenerated, removed, candidate.saves_ms,
                       candidate.costs_ms, evidence.quality if evidence else None, quality_before, match.detail,
                       macs_saved, params_saved, evidence)
