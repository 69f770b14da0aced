"""int8 quantization, the last step: judged on the program as ExecuTorch's runtime runs it (which scores the held-out
samples in a second or two where PyTorch's simulation of the int8 arithmetic takes a pass as long as the float
model's), and, where a device timer is given (``rebirth optimize``), timed against the float program on the device.
Post-training int8 first; where it is over the budget, int8 learned by quantization-aware training (at most
``SlimOptions.qat_steps`` steps, stopping once the simulation is within with the runtime's gap to it to spare),
judged the same way.
The decision is made on candidate programs in a scratch folder; the step then offers the int8 program as the
slimmed one, with the float one beside it, or nothing (the float model stands)."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from torch import fx

from rebirth.contract.paired import Budget, Question
from rebirth.contract.quiet import quiet
from rebirth.contract.slim import (
    ABOUT,
    FLOAT,
    PTQ,
    QAT,
    RUNTIME,
    SIMULATION,
    SLIM,
    QuantizationAttempt,
    QuantizationRecord,
    program_name,
)
from rebirth.slimmer import quantize
from rebirth.slimmer.judge import Judge
from rebirth.slimmer.passes import SlimPass
from rebirth.slimmer.plan import Candidate
from rebirth.slimmer.steps.base import Program, StepContext, StepResult

INT8_QUESTION = Question(precision=0.05)
INT8_BUDGET = Budget(max_runs=16, max_seconds=120.0)
"""How long the int8 program is timed against the float one on the device."""


@dataclass(frozen=True)
class QuantizeStep:
    scheme: str = "int8"
    name = "int8"

    def offers(self, model: fx.GraphModule, context: StepContext) -> list[tuple[Candidate, SlimPass]]:
        """Nothing per layer: the step works on the whole program."""
        return []

    def run(self, model: fx.GraphModule, judge: Optional[Judge], context: StepContext) -> StepResult:
        """``model`` unchanged, with the int8 program offered as the slimmed one when every check keeps it: made
        after training, else, where that was over the budget, by quantization-aware training."""
        replay = context.options.replay
        if replay is not None and not replay.int8:
            return self._said(self._refused(model, QuantizationRecord(self.scheme, False), "not_in_plan",
                                            f"the plan ({replay.source}) made no int8 program"), context)
        if judge is None or context.lessons is None:
            return self._said(self._refused(model, QuantizationRecord(self.scheme, False), "no_data", "quantization "
                              "needs data to calibrate on (a model taking one square 3-channel image, or --data)"),
                              context)
        try:
            start = time.perf_counter()
            quantized = quantize.quantize_int8(model, context.example_inputs,
                                               context.lessons.calibration)
        except Exception as error:  # the quantizer or export refused this graph: the float model stands
            return self._said(self._refused(model, QuantizationRecord(self.scheme, False), "quantizer_refused",
                                            f"the quantizer refused the model ({_first_line(error)})"), context)
        result = self._judged(model, quantized, PTQ, 0, time.perf_counter() - start, (), judge, context)
        assert result.quantization is not None
        if result.quantization.code in OVER_BUDGET and context.options.qat_steps > 0:
            result = self._learned(model, quantized, result.quantization, judge, context)
        return self._said(result, context)

    def _learned(self, model: fx.GraphModule, post_training: quantize.Quantized, tried: QuantizationRecord,
                 judge: Judge, context: StepContext) -> StepResult:
        """int8 learned by quantization-aware training, after ``post_training`` int8 (``tried``) was over the
        budget; ``tried`` stands if the quantizer cannot prepare the model for training."""
        lessons, steps = context.lessons, context.options.qat_steps
        assert lessons is not None
        context.say(f"post-training int8: {tried.reason}; learning int8 (quantization-aware training, at most {steps} "
                    "steps)")
        tried = dataclasses.replace(tried, quality_after=judge.examine(post_training.module).quality)
        gap = _runtime_gap(tried)
        try:
            learned = quantize.learn_int8(model, context.example_inputs, lessons.logits, steps,
                                          lambda int8: judge.fitting(int8, gap) is not None, lessons.labels,
                                          context.options.seed, context.progress)
        except Exception as error:
            return StepResult(model, quantization=dataclasses.replace(
                tried, reason=f"{tried.reason}; quantization-aware training failed ({_first_line(error)})"))
        result = self._judged(model, learned.quantized, QAT, learned.steps, learned.seconds, tried.attempts, judge,
                              context)
        record = result.quantization
        assert record is not None
        if record.applied:
            return result
        return dataclasses.replace(result, quantization=dataclasses.replace(
            record, reason=f"after {learned.steps} steps of quantization-aware training, {record.reason}"))

    def _judged(self, model: fx.GraphModule, quantized: quantize.Quantized, method: str, steps: int, seconds: float,
                earlier: tuple[QuantizationAttempt, ...], judge: Judge, context: StepContext) -> StepResult:
        """``quantized`` judged as the runtime runs it; its attempt added to ``earlier``."""
        result = self._tried(model, quantized, method, judge, context)
        record = result.quantization
        assert record is not None and record.evidence is not None
        attempt = QuantizationAttempt(method, record.evidence.lost, RUNTIME if record.runtime_quality is not None
                                      else SIMULATION, steps, round(seconds, 2))
        return dataclasses.replace(result, quantization=dataclasses.replace(record, attempts=(*earlier, attempt)))

    def _tried(self, model: fx.GraphModule, quantized: quantize.Quantized, method: str, judge: Judge,
               context: StepContext) -> StepResult:
        record = QuantizationRecord(self.scheme, True, quantized.layers, quantized.calibration_samples,
                                    context.quality, method=method)
        try:
            candidates = _Candidates.make(model, quantized, context)
        except Exception as error:  # lowering refused it: the float model stands
            return self._simulated_refusal(model, record, quantized, judge, "runtime_refused", "the int8 program "
                                           f"cannot be lowered ({_first_line(error)}): slim.pte is the float one")
        with tempfile.TemporaryDirectory(prefix="rebirth-int8-") as scratch:
            return self._as_run(model, record, candidates.written(Path(scratch), context), judge, context)

    def _as_run(self, model: fx.GraphModule, record: QuantizationRecord, candidates: _Candidates, judge: Judge,
                context: StepContext) -> StepResult:
        """The int8 candidate judged as ExecuTorch's runtime runs it, then timed on the device if there is one."""
        assert candidates.folder is not None
        int8, floating = candidates.folder / program_name(SLIM), candidates.folder / program_name(FLOAT)
        refused = quantize.runtime_refusal(int8)
        if refused:
            return self._simulated_refusal(model, record, candidates.quantized, judge, "runtime_refused",
                                           f"the runtime cannot run the int8 program ({refused}): slim.pte is the "
                                           "float one")
        evidence = judge.examine_logits(quantize.runtime_outputs(int8, judge.loaders.held_out))  # type: ignore[attr-defined]
        ran = evidence.quality
        record = dataclasses.replace(record, runtime_quality=ran, evidence=evidence)
        if not evidence.within:
            return self._refused(model, record, "over_budget_at_runtime",
                                 f"as ExecuTorch's runtime runs it, the int8 program scores {ran:.1f} "
                                 f"({evidence.said}, over the {judge.budget} budget): slim.pte is the float one")
        context.say(f"quantized {len(record.layers)} layers to {self.scheme} (quality {context.quality:.1f} -> "
                    f"{ran:.1f} as ExecuTorch's runtime runs it)")
        from rebirth.models import read_pte

        record = dataclasses.replace(record, weight_bytes_before=read_pte(floating).constant_bytes,
                                     weight_bytes_after=read_pte(int8).constant_bytes)
        slower = self._slower_on_device(floating, int8, context)
        if slower:
            return self._refused(model, record, "slower_on_device", slower)
        return StepResult(model, quantization=record, programs=candidates.programs(ran))

    def _slower_on_device(self, floating: Path, int8: Path, context: StepContext) -> Optional[str]:
        """int8 is not faster everywhere (memory-bound depthwise layers run slower quantized on XNNPACK): why the
        float program stands, when the device timer says the int8 one is surely slower (the speed-up's whole
        interval below 1); None when it is not, or when there is no device to time on."""
        timer = context.timer
        if timer is None:
            return None
        result = timer.compare(floating, int8, INT8_QUESTION, INT8_BUDGET)
        low, high = result.speedup_interval
        ran = (f"{result.speedup:.2f}x the float program's speed (95% CI {low:.2f}-{high:.2f}x, {len(result.runs)} "
               "runs)")
        if high >= 1.0:
            context.say(f"int8 on {timer.device}: {ran}: kept")
            return None
        return f"on {timer.device} the int8 program ran {ran}: slim.pte is the float one"

    def _simulated_refusal(self, model: fx.GraphModule, record: QuantizationRecord, quantized: quantize.Quantized,
                           judge: Judge, code: str, reason: str) -> StepResult:
        """Refused before the runtime could score it: what it loses as PyTorch simulates it is all there is to
        record."""
        simulated = judge.examine(quantized.module)
        return self._refused(model, dataclasses.replace(record, quality_after=simulated.quality, evidence=simulated),
                             code, reason)

    def _refused(self, model: fx.GraphModule, record: QuantizationRecord, code: str, reason: str) -> StepResult:
        return StepResult(model, quantization=dataclasses.replace(record, applied=False, reason=reason, code=code))

    def _said(self, result: StepResult, context: StepContext) -> StepResult:
        """``result``, once the step said why it quantized nothing, if it did not."""
        record = result.quantization
        if record is not None and not record.applied:
            context.say(f"not quantized: {record.reason}")
        return result


OVER_BUDGET = ("over_budget", "over_budget_at_runtime")
"""Refusals quantization-aware training may answer: the int8 program ran, and lost too much."""


def _runtime_gap(tried: QuantizationRecord) -> float:
    """Points the runtime lost beyond PyTorch's simulation with post-training int8 (``tried``), where it ran: what
    quantization-aware training's simulated checks must leave spare, so that it does not stop at a model that
    the simulation keeps and the runtime will not."""
    if tried.runtime_quality is None or tried.quality_after is None:
        return 0.0
    return max(0.0, tried.quality_after - tried.runtime_quality)


def _first_line(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'no message'}"


@dataclass(frozen=True)
class _Candidates:
    """The int8 program and the float one, exported and lowered once; written to a scratch folder to be judged."""

    model: fx.GraphModule
    quantized: Any
    float_exported: Any
    float_lowered: Any
    int8_lowered: Any
    folder: Optional[Path] = None

    @classmethod
    def make(cls, model: fx.GraphModule, quantized: quantize.Quantized, context: StepContext) -> _Candidates:
        """The float program lowered by the worker (``context.lowering``) while the int8 one is lowered here, or
        both here."""
        import torch

        from rebirth.models import lower

        with quiet():
            exported = torch.export.export(model, context.example_inputs)
        backend = context.options.backend
        if context.lowering is not None:
            context.lowering.submit(id(model), exported, model)
        int8_lowered = lower(quantized.program, backend)
        return cls(model, quantized, exported, None if context.lowering is not None else lower(exported, backend),
                   int8_lowered)

    def written(self, folder: Path, context: StepContext) -> _Candidates:
        """These candidates, written to ``folder`` as slim.pte (int8) and slim-float.pte (the worker's, or lowered
        here where it has none); the worker has finished every job it has, so that nothing else runs on this
        machine while the programs are timed."""
        from rebirth.models import write_lowered
        from rebirth.models.lowering import write_via

        backend = context.options.backend
        write_lowered(self.int8_lowered, backend, folder / program_name(SLIM), "int8 candidate")
        lowered = write_via(context.lowering, id(self.model), self.float_lowered, self.float_exported, backend,
                            folder / program_name(FLOAT), "float candidate")
        if context.lowering is not None:
            context.lowering.finish()
        return dataclasses.replace(self, folder=folder,
                                   float_lowered=lowered if lowered is not None else self.float_lowered)

    def programs(self, ran: float) -> tuple[Program, ...]:
        """The int8 program as the slimmed one (``ran``: its quality as the runtime ran it), the float beside it."""
        return (Program(SLIM, self.quantized.module, self.quantized.program, self.int8_lowered, keep_pt2=True,
                        quality=ran),
                Program(FLOAT, self.model, self.float_exported, self.float_lowered, ABOUT[FLOAT], keep_pt2=True))
