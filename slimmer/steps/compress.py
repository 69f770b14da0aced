"""A compression step (a channel reduction, a low-rank decomposition): one pass over every layer where the profile
says it pays, made as one step and fine-tuned once (the paper decomposed its merged network whole, then
fine-tuned): each layer at the offer that saves it the most time; if that cannot be learned back within the
budget, each at its next offer (a gentler one); else none."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

from torch import fx

from rebirth.contract.slim import Evidence, MergeRecord, Part, SkipRecord
from rebirth.slimmer.cost import layer_macs, parameters
from rebirth.slimmer.finetune import COMPRESSED_LR, fit_block, fit_end_to_end
from rebirth.slimmer.graph import finish
from rebirth.slimmer.judge import Judge
from rebirth.slimmer.passes import LayerCosts, SlimPass
from rebirth.slimmer.plan import Candidate, candidates
from rebirth.slimmer.steps.base import Program, StepContext, StepResult

COMPRESS_LAYER_WORK = 0.75
"""A compression step is one fine-tuning for all its layers, so a layer joins it when its offer saves this share of
``min_gain`` of the model's multiply-accumulates (1.5% by default), as long as the layers together save ``min_gain``
of them. Work, not time, decides, so that the same model makes the same step from any profile of it: on full-size
GoogLeNet, time cut the layers at 1% of the profile, and the layers near that cut joined or left with a few percent
of drift between two profiles (one step thinned 7, 8 or 9 layers); on googlenet-small the decomposition as a whole
sat at the 2% of the time it had to save together, and was made in 3 runs of 5. The original GoogLeNet's conv and
linear layers took about a third of its profile, so 1.5% of its work is about the old cut. The profile still says
whether an offer saves time at all (``Candidate.worthwhile``: three layers' fixed costs can outweigh one's work)."""

COMPRESSED_TUNING = 8
"""A compression's end-to-end fine-tuning is this many times a merge's (``end_to_end_steps``), at ``COMPRESSED_LR``
decaying: googlenet-small with 5 layers at half their channels lost 2.45 points (35 predictions changed) after 80
steps at a held 1e-4; after 320 decaying from 3e-4 it gained 0.78 (27 changed), after 640 it gained 1.56."""


@dataclass(frozen=True)
class CompressionStep:
    """A stage-1 ``SlimPass`` (``learns_from_current``) applied as one step; ``role`` names the model after it
    when a later step changes it further (``slim-ROLE.pte``), None to write no such program."""

    technique: type[SlimPass]
    role: Optional[str] = None
    about: str = ""

    @property
    def name(self) -> str:
        return self.technique.kind

    def offers(self, model: fx.GraphModule, context: StepContext) -> list[tuple[Candidate, SlimPass]]:
        return candidates(model, [self.technique.for_model(context.example_inputs)], context.times,
                          context.example_inputs, context.original_macs)

    def run(self, model: fx.GraphModule, judge: Optional[Judge], context: StepContext) -> StepResult:
        """The model compressed at the strongest offers the budget allows (as it was, without data)."""
        if judge is None or context.lessons is None:
            return StepResult(model)
        chosen = self._worthwhile(model, context) if context.options.replay is None else self._replayed(model, context)
        if not chosen:
            return StepResult(model)
        skipped: list[SkipRecord] = []
        for level in range(max(len(choices) for choices in chosen.values())):
            attempt = _Attempt.make(model, [choices[min(level, len(choices) - 1)] for choices in chosen.values()],
                                    context)
            evidence = self._learn(attempt, model, judge, context)
            if evidence.within:
                return self._kept(attempt, model, evidence, context, tuple(skipped))
            skipped.append(SkipRecord(self.name, attempt.layers, f"{evidence.said}, over the {judge.budget} budget "
                                      f"({attempt.summary}; {attempt.detail})", "over_budget", evidence))
            context.say(f"not {attempt.compression.verb} ({attempt.summary}): {evidence.said}")
        return StepResult(model, skipped=tuple(skipped))

    def _worthwhile(self, model: fx.GraphModule, context: StepContext) -> dict[str, list[tuple[Candidate, SlimPass]]]:
        """Each layer's offers worth making, the one saving the most work first, by the layer a match ends at (a
        decomposed layer; the convolution reading reduced channels); none when together they are not worth a
        fine-tuning."""
        macs = layer_macs(model, context.example_inputs)
        least = context.options.min_gain * sum(macs.values())
        # each offer's estimate with every conv and linear layer's time taken to be its work (and no other layer's):
        # the multiply-accumulates it saves, which no profile's noise moves
        work = LayerCosts({layer: float(m) for layer, m in context.original_macs.items()}, macs, context.original_macs)

        def saved(pair: tuple[Candidate, SlimPass]) -> float:
            saves, adds = pair[1].estimate(model, pair[0].match, work)
            return saves - adds

        found: dict[str, list[tuple[Candidate, SlimPass]]] = {}
        chosen: dict[str, float] = {}  # each layer's first offer's saving
        for saving, pair in sorted(((saved(pair), pair) for pair in self.offers(model, context)),
                                   key=lambda item: -item[0]):
            if pair[0].worthwhile and saving >= COMPRESS_LAYER_WORK * least:
                layer = pair[0].match.layers[-1]
                found.setdefault(layer, []).append(pair)
                chosen.setdefault(layer, saving)
        if not found or sum(chosen.values()) < least:
            context.say(f"no layers are worth {self.technique.gerund}: no change that the profile says saves time "
                        f"saves {100 * context.options.min_gain:g}% of the model's multiply-accumulates together")
            return {}
        return found

    def _replayed(self, model: fx.GraphModule, context: StepContext) -> dict[str, list[tuple[Candidate, SlimPass]]]:
        """The offers a recorded plan made this compression at, found on ``model``; none when it made none, or
        when ``model`` no longer offers one of them."""
        replay = context.options.replay
        assert replay is not None
        parts = replay.parts(self.name)
        if not parts:
            context.say(f"the plan ({replay.source}) made no {self.name} step" if parts is None else
                        f"the plan's {self.name} step lists no offers (a slim.json before version 9): not replayed")
            return {}
        offered = {(candidate.match.layers, candidate.match.detail): (candidate, slim_pass)
                   for candidate, slim_pass in self.offers(model, context)}
        missing = [part for part in parts if (part.layers, part.detail) not in offered]
        if missing:
            context.say(f"not replayed: {self.name}: this model does not offer "
                        + ", ".join(f"{part.layers[0]} {part.detail}" for part in missing))
            return {}
        return {part.layers[-1]: [offered[(part.layers, part.detail)]] for part in parts}

    def _learn(self, attempt: _Attempt, model: fx.GraphModule, judge: Judge, context: StepContext) -> Evidence:
        """Fine-tune the compressed layers to reproduce ``model``: the block (twice as long as for one merge), then
        if need be all layers (``COMPRESSED_TUNING`` times as long, stopping halfway if the model is within the
        budget there); what it reached, as evidence."""
        lessons, options = context.lessons, context.options
        assert lessons is not None
        fit_block(attempt.model, model, attempt.anchors, attempt.learned, lessons.batches, options.block_steps * 2,
                  options.seed, context.progress)
        evidence = judge.fitting(attempt.model)
        if evidence is None:
            steps = options.end_to_end_steps * COMPRESSED_TUNING
            taken = fit_end_to_end(attempt.model, lessons.logits, steps, options.seed, lessons.labels, context.progress,
                                   COMPRESSED_LR, decay=True, enough=lambda: judge.fitting(attempt.model) is not None)
            if taken < steps:
                context.say(f"{self.name}: within the budget after {taken} of {steps} end-to-end steps; stopped there")
            evidence = judge.examine(attempt.model)  # scored already where it stopped halfway (``Judge.logits``)
        return evidence

    def _kept(self, attempt: _Attempt, model: fx.GraphModule, evidence: Evidence, context: StepContext,
              skipped: tuple[SkipRecord, ...]) -> StepResult:
        quality = evidence.quality
        chosen = [candidate for candidate, _ in attempt.chosen]
        inputs = context.example_inputs
        record = MergeRecord(self.name, attempt.layers, False, attempt.learned, (), sum(c.saves_ms for c in chosen),
                             sum(c.costs_ms for c in chosen), quality, context.quality,
                             f"{attempt.summary}; {attempt.detail}",
                             sum(layer_macs(model, inputs).values()) - sum(attempt.work.values()),
                             parameters(model) - parameters(attempt.model), evidence,
                             tuple(Part(c.match.layers, c.match.detail) for c in chosen))
        gain = sum(candidate.gain_ms for candidate in chosen)
        context.say(f"{attempt.compression.verb} {attempt.summary} (saves ~{gain:.2f} ms, quality "
                    f"{context.quality:.1f} -> {quality:.1f})")
        programs = (Program(self.role, attempt.model, about=self.about),) if self.role else ()
        return StepResult(attempt.model, quality, (record,), skipped, programs=programs)


@dataclass(frozen=True)
class _Attempt:
    """The model with one offer per layer applied, before fine-tuning."""

    model: fx.GraphModule
    chosen: list[tuple[Candidate, SlimPass]]
    compression: SlimPass
    work: dict[str, int]
    """Multiply-accumulates per layer after the rewrite."""
    summary: str
    """``9 layers to 28% of their MACs``."""

    @classmethod
    def make(cls, model: fx.GraphModule, chosen: list[tuple[Candidate, SlimPass]], context: StepContext) -> _Attempt:
        compression = chosen[0][1]
        trial = copy.deepcopy(model)
        for candidate, _ in chosen:
            compression.rewrite(trial, candidate.match)
        trial = finish(trial)
        before, after = layer_macs(model, context.example_inputs), layer_macs(trial, context.example_inputs)
        layers = tuple(dict.fromkeys(layer for candidate, _ in chosen for layer in candidate.match.layers))
        counted = [layer for layer in layers if before.get(layer)]
        share = sum(after.get(layer, 0) for layer in counted) / sum(before[layer] for layer in counted)
        summary = f"{len(counted)} layer{'s' if len(counted) > 1 else ''} to {100 * share:.0f}% of their MACs"
        return cls(trial, chosen, compression, after, summary)

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(layer for candidate, _ in self.chosen for layer in candidate.match.layers))

    @property
    def learned(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(layer for candidate, _ in self.chosen for layer in candidate.match.regenerated))

    @property
    def anchors(self) -> tuple[tuple[str, str | tuple[str, ...]], ...]:
        return self.compression.group_anchors([candidate.match for candidate, _ in self.chosen])

    @property
    def detail(self) -> str:
        """``conv2 Tucker-2 ranks 24x16 of 64x48 (43% of the MACs), ...``"""
        return ", ".join(f"{c.match.layers[0]} {c.match.detail}" for c, _ in self.chosen)
