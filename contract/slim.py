"""slim.json: what a slimming run did (every merge applied or skipped, what it saved and cost, the
accuracy before and after), as a typed, versioned record like the Profile.

Version 1 files (a bare dict without ``removed`` layers per merge), version 2 files (judged by
``agreement`` where accuracy could not judge), version 3 files (no per-step savings), version 4 files
(no list of the files written), version 5 files (no codes), version 6 files (no allocation), version 7 files
(no record of how int8 was made) and version 8 files (decisions on the estimate alone) are migrated on load.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rebirth.contract.errors import InputError
from rebirth.contract.files import write_json_atomic
from rebirth.contract.records import from_dict

SCHEMA_VERSION = 9
"""9: a compression's record lists its offers (``MergeRecord.parts``, what ``--plan FILE`` replays); a top-1 decision
is kept only when the one-sided upper bound of the points lost, at a stated confidence, is
within the budget (``Evidence.confidence``, ``Evidence.bound``; older evidence was decided on its estimate).
8: the quantization step says which way its int8 program was made (``PTQ`` or ``QAT``) and what each way lost
(``QuantizationAttempt``).
7: how the budget was allocated across the techniques, and any revisit (``Allocation``; None in older files).
6: skipped steps and the quantization step say why with a code (``SKIP_CODES``, ``QUANTIZATION_CODES``); each
decision may carry its ``Evidence`` (an optional field older files lack)."""

SKIP_CODES = {"over_budget": "lost more than the accuracy budget",
              "small_gain": "saves less of the measured time than a fine-tuning is worth",
              "revisited": "made, then undone: int8 on the model before it buys more within the budget",
              "not_in_model": "a replayed plan's step that this model offers no longer"}
QUANTIZATION_CODES = {"no_data": "no data to calibrate on", "quantizer_refused": "the quantizer refused the model",
                      "over_budget": "over the budget in PyTorch's simulation",
                      "runtime_refused": "ExecuTorch's runtime cannot run the int8 program",
                      "over_budget_at_runtime": "over the budget as ExecuTorch's runtime runs it",
                      "slower_on_device": "slower than the float program on the device",
                      "not_in_plan": "the replayed plan made no int8 program"}

TOP1, AGREEMENT, FIDELITY = "top1", "agreement", "fidelity"

PTQ, QAT = "ptq", "qat"
"""Ways an int8 program is made: post-training (calibrated), or by quantization-aware training."""
SIMULATION, RUNTIME = "simulation", "runtime"
"""Where an int8 program was last judged: PyTorch's simulation of its arithmetic, or ExecuTorch's runtime."""

SLIM, FLOAT, MERGED, REDUCED, RECORD = "slim", "float", "merged", "reduced", "record"
"""Roles of the files a slimming writes: the slimmed program; the float program beside an int8 one; the
merges alone; after the channel reduction (before a decomposition); slim.json. A registered step may add its
own role (its program is ``slim-ROLE.pte``)."""
PTE, PT2, ETRECORD, JSON = "pte", "pt2", "etrecord", "json"
"""What a file holds: an ExecuTorch program, its exported PyTorch program, its ETRecord, the record."""


@dataclass(frozen=True)
class Evidence:
    """What a decision to keep or refuse a step rested on: the step's model against the original on the held-out
    samples, and the budget."""

    measure: str
    """``top1`` (held-out accuracy) or ``fidelity`` (of the logits to the original's)."""
    quality: float
    lost: float
    """Points lost against the original on these samples: what the budget is held to."""
    budget: float
    samples: int
    changed: Optional[int] = None
    """Held-out samples whose prediction differs from the original's (top-1): the accuracy moved by at most
    that many samples' worth, whatever the labels say."""
    low: Optional[float] = None
    """The 95% interval of the points lost on data like these samples (top-1: paired with the original on each
    sample); None where the measure has no sampling interval (fidelity)."""
    high: Optional[float] = None
    confidence: Optional[float] = None
    """The confidence the decision asked for (0.95: 95%), where the measure has a sampling interval ..."""
    bound: Optional[float] = None
    """... and the one-sided upper bound, at that confidence, of the points lost on data like these samples: what
    the budget holds a top-1 decision to. None in records before version 9 and for fidelity, where the estimate
    is held to the budget."""
    left: Optional[float] = None
    """The budget left after this step: the budget less what it is held to (``held``); computed when not given."""

    def __post_init__(self) -> None:
        if self.left is None:
            object.__setattr__(self, "left", self.budget - self.held)

    @property
    def held(self) -> float:
        """What the budget is held to: the bound where there is one, else the points lost."""
        return self.lost if self.bound is None else self.bound

    def fits(self, margin: float = 0.0) -> bool:
        """Whether the step is kept: what the budget holds it to, with ``margin`` more points lost (the runtime's
        gap, for quantization-aware training's checks), is within the budget. The one budget check."""
        return self.held + margin <= self.budget

    @property
    def within(self) -> bool:
        return self.fits()

    @property
    def budget_left(self) -> float:
        return self.budget - self.held

    @property
    def said(self) -> str:
        """``0.22 points lost (at most 0.48 at 95% confidence)``."""
        if self.bound is None or self.confidence is None:
            return f"{self.lost:.2f} points lost"
        return f"{self.lost:.2f} points lost (at most {self.bound:.2f} at {100 * self.confidence:g}% confidence)"


@dataclass(frozen=True)
class Part:
    """One layer's offer in a compression step: the match's layers and its detail (``12 of 24 channels into ...``,
    ``Tucker-2 ranks 24x16 of 64x48``), what a replay (``--plan FILE``) finds the same offer by."""

    layers: tuple[str, ...]
    detail: str = ""


@dataclass(frozen=True)
class MergeRecord:
    """One merge the slimmer applied."""

    kind: str
    """The pass that made it (``fold_bn``, ``remove_lrn``, ``merge_pool_into_conv``, ...)."""
    layers: tuple[str, ...]
    """Every layer the merge involved, by module path in the original model."""
    exact: bool
    """Outputs stay equal up to float rounding; else the learned layers were fine-tuned."""
    learned: tuple[str, ...] = ()
    """Layers whose weights were learned again (module paths after the merge)."""
    removed: tuple[str, ...] = ()
    """Layers deleted outright (an LRN, a dropout, a thin branch); the merge's other layers were merged
    into their neighbours (a BatchNorm folded, a pool turned into a stride)."""
    saves_ms: float = 0.0
    costs_ms: float = 0.0
    quality_after: Optional[float] = None
    """Held-out top-1 (or output fidelity, see ``SlimAccuracy``) right after this merge, for a learned one ..."""
    quality_before: Optional[float] = None
    """... and right before it: what the step cost is the difference."""
    detail: str = ""
    """What the step does beyond its kind, e.g. a decomposition's ``Tucker-2 ranks 24x16 of 64x48``."""
    macs_saved: Optional[int] = None
    """Multiply-accumulates per inference the step removed (negative: added), counted on the model."""
    params_saved: Optional[int] = None
    """Parameters the step removed (negative: added); float32, 4 bytes each in the .pte."""
    evidence: Optional[Evidence] = None
    """What keeping it rested on (a learned step)."""
    parts: tuple[Part, ...] = ()
    """A compression step's offers, one per layer it changed (empty for a merge, which is one offer)."""

    @property
    def points_lost(self) -> Optional[float]:
        """What the step cost in held-out top-1 (or fidelity) points; None for an exact step."""
        if self.quality_before is None or self.quality_after is None:
            return None
        return self.quality_before - self.quality_after

    @property
    def gain_ms(self) -> float:
        """What the profile says the merge saves, net."""
        return self.saves_ms - self.costs_ms


@dataclass(frozen=True)
class PlannedMerge:
    """A merge the planner could make (``rebirth slim --plan``) and what the profile says it is worth."""

    kind: str
    layers: tuple[str, ...]
    exact: bool
    saves_ms: float
    costs_ms: float
    memory_bytes: int
    """Bytes of activations the merge no longer writes."""
    worthwhile: bool
    detail: str = ""
    """What the step does beyond its kind (a decomposition's ranks)."""

    @property
    def gain_ms(self) -> float:
        return self.saves_ms - self.costs_ms


@dataclass(frozen=True)
class SkipRecord:
    """A merge the slimmer considered and did not make, and why."""

    kind: str
    layers: tuple[str, ...]
    reason: str
    code: str = ""
    """Why, for tools and tests (``SKIP_CODES``); ``reason`` says it with the numbers."""
    evidence: Optional[Evidence] = None
    """What refusing it rested on (a step over the budget)."""


@dataclass(frozen=True)
class Score:
    """Held-out accuracy in points (0-100); ``top5`` where there are 5 or more classes."""

    top1: float
    top5: Optional[float] = None
    samples: int = 0


@dataclass(frozen=True)
class BeforeAfter:
    before: Optional[int] = None
    after: Optional[int] = None


@dataclass(frozen=True)
class SlimAccuracy:
    """How the slimmed model was judged.

    ``metric`` is ``top1`` when the original learned the data and predicts at least half of its classes
    (both models scored on held-out labels), else ``fidelity``: 100 minus the relative error of the slimmed
    model's logits against the original's, around the original's mean output (``reason`` says why).
    Version 2 records judged such models by ``agreement``, the share of held-out samples on which both
    predict the same class, which a model predicting one class keeps whatever the slimmer does.
    """

    metric: str
    dataset: Optional[str] = None
    before: Optional[Score] = None
    after: Optional[Score] = None
    agreement: Optional[float] = None
    """Share of held-out samples on which the slimmed model predicts the original's class (shown, never a gate)."""
    fidelity: Optional[float] = None
    reference_classes: Optional[int] = None
    """How many distinct classes the original predicts on the held-out samples."""
    classes: Optional[int] = None
    reason: Optional[str] = None


@dataclass(frozen=True)
class QuantizationAttempt:
    """One way the quantization step made an int8 program, and what that program lost."""

    method: str
    """``PTQ`` (calibrated after training) or ``QAT`` (quantization-aware training)."""
    lost: float
    """Points lost against the original (held-out top-1 or fidelity), as judged at ``judged``."""
    judged: str
    """``RUNTIME`` where the program got that far, else ``SIMULATION`` (over the budget there already)."""
    steps: int = 0
    """Training steps (one batch each) quantization-aware training took; 0 after training."""
    seconds: float = 0.0
    """Time to make the int8 model: calibrating, or training with its checks (not lowering or judging it)."""


@dataclass(frozen=True)
class QuantizationRecord:
    """The quantization step, when one was asked for: applied or not, and why."""

    scheme: str
    """``int8``: XNNPACK's symmetric quantization, per-channel int8 weights, int8 activations."""
    applied: bool
    layers: tuple[str, ...] = ()
    """The layers quantized (module paths of the slimmed model)."""
    calibration_samples: int = 0
    quality_before: Optional[float] = None
    """The float model's quality (held-out top-1 or fidelity, as ``SlimAccuracy.metric``) ..."""
    quality_after: Optional[float] = None
    """... and the quantized model's, in PyTorch (torchao's simulation of the int8 arithmetic), where it was scored
    there: post-training int8 before quantization-aware training (the runtime's gap to it is what that training
    leaves spare), and a program the runtime cannot run; None otherwise ..."""
    runtime_quality: Optional[float] = None
    """... and the int8 program's as ExecuTorch's runtime ran it on the held-out samples: what the budget
    judges, since it is what a phone runs."""
    weight_bytes_before: Optional[int] = None
    """Constant bytes of the float and the quantized .pte (the weights as the program stores them)."""
    weight_bytes_after: Optional[int] = None
    reason: Optional[str] = None
    """Why it was not applied, or what else a reader must know."""
    code: Optional[str] = None
    """Why it was not applied, for tools and tests (``QUANTIZATION_CODES``)."""
    evidence: Optional[Evidence] = None
    """The int8 program judged as the runtime ran it (else as PyTorch simulated it)."""
    method: Optional[str] = None
    """How the int8 program this record describes was made (``PTQ`` or ``QAT``); None when none was made."""
    attempts: tuple[QuantizationAttempt, ...] = ()
    """Every way tried, in order: post-training int8, then quantization-aware training where that was over the
    budget."""

    def attempt(self, method: str) -> Optional[QuantizationAttempt]:
        """The attempt made by ``method`` (``PTQ`` or ``QAT``), if there was one."""
        return next((attempt for attempt in self.attempts if attempt.method == method), None)


RUN, SKIPPED, UNAVAILABLE = "run", "skipped", "unavailable"
"""What became of a technique: considered; left out by the user (``--skip``); cannot run here (``reason``)."""


@dataclass(frozen=True)
class TechniqueEstimate:
    """One technique as the allocation saw it, after the merges and before the compressions spent the budget."""

    name: str
    """Its name in ``slimmer.steps.STEPS``."""
    status: str
    """``RUN``, ``SKIPPED`` or ``UNAVAILABLE``."""
    reason: str = ""
    gain_ms: Optional[float] = None
    """What the profile says it would save on the merged model (int8: the conv and linear layers' share)."""
    cost: Optional[float] = None
    """Points it was probed to lose on the merged model (int8: post-training, in PyTorch's simulation); None
    where only making it tells (a compression is fine-tuned first)."""


@dataclass(frozen=True)
class Revisit:
    """int8 tried on the model from before the last compression(s), after the compressions left it no budget."""

    dropped: tuple[str, ...]
    """The compressions undone for it, in the order they were made."""
    speedup_without: float
    """The profile's estimate of the speed-up the compressions bought, without int8 ..."""
    speedup_with: float
    """... and of the model from before them, with int8."""
    kept: bool
    """int8 on the earlier model was within the budget, so that combination stands."""
    reason: str = ""


@dataclass(frozen=True)
class Allocation:
    """How the one accuracy budget was shared across the techniques: int8's post-training cost is probed on the
    merged model, the compressions are judged within the budget less what int8 is reserved when int8 buys more
    per point, and when int8 is still refused for lack of budget an earlier compression spent, the model from
    before it is tried with int8 (``revisits``); the combination with the larger estimated speed-up stands."""

    budget: float
    merges_lost: Optional[float] = None
    """Points the merges lost (what the later techniques could still spend is ``budget - merges_lost``)."""
    reserved: float = 0.0
    """Points held back from the compressions for int8."""
    rule: str = ""
    """Why it was shared so, in one line."""
    techniques: tuple[TechniqueEstimate, ...] = ()
    probe: Optional[Evidence] = None
    """Post-training int8 on the merged model, in PyTorch's simulation."""
    revisits: tuple[Revisit, ...] = ()
    estimated_speedup: Optional[float] = None
    """What the profile predicts for the kept steps together (int8 at ``int8_speedup`` on conv and linear)."""
    int8_speedup: Optional[float] = None
    """The speed-up assumed for int8 conv and linear kernels."""


@dataclass(frozen=True)
class OutputFile:
    """One file a slimming wrote into its output folder."""

    name: str
    """The file's name in the output folder: ``slim-merged.pte``."""
    role: str
    """Which program it belongs to (``SLIM``, ``FLOAT``, ``MERGED``, ``REDUCED``, a registered step's), or
    ``RECORD`` for slim.json."""
    kind: str
    """``PTE``, ``PT2``, ``ETRECORD`` or ``JSON``."""
    about: str = ""
    """What the program is, for a reader: ``the merges alone``."""


@dataclass(frozen=True)
class SlimRecord:
    """One slimming run: the document ``slim.json`` holds."""

    source: str
    backend: str
    profile: Optional[str]
    """The profile the plan was ranked with (a path), or None when the slimmer profiled first."""
    merges: tuple[MergeRecord, ...] = ()
    skipped: tuple[SkipRecord, ...] = ()
    params: BeforeAfter = BeforeAfter()
    macs: BeforeAfter = BeforeAfter()
    accuracy: Optional[SlimAccuracy] = None
    messages: tuple[str, ...] = ()
    quantization: Optional[QuantizationRecord] = None
    files: tuple[OutputFile, ...] = ()
    """Every file the slimming wrote, the slimmed program first and slim.json last."""
    allocation: Optional[Allocation] = None
    """How the budget was shared across the techniques (None: a record before version 7)."""
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {"schema_version": data.pop("schema_version"), **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SlimRecord:
        """Build a SlimRecord from its JSON form, migrating older schema versions.

        Raises:
            ValueError: not a slim record, or one from a newer rebirth.
        """
        return from_dict(cls, migrate(dict(data)))

    def save(self, path: str | os.PathLike) -> None:
        """Write slim.json atomically."""
        write_json_atomic(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> SlimRecord:
        """Read a slim.json.

        Raises:
            InputError: the file is missing or is not a slim.json.
        """
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise InputError(f"{path}: no such slim.json") from None
        except json.JSONDecodeError as error:
            raise InputError(f"{path}: not JSON ({error})") from None
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise InputError(f"{path}: not a slim.json ({error})") from None

    def to_dataframe(self):
        """One row per step made or skipped (pandas): kind, layers, made, exact, saves_ms, costs_ms,
        quality_before, quality_after, points_lost, macs_saved, params_saved, code, reason."""
        import pandas

        made = [dict(kind=m.kind, layers=", ".join(m.layers), made=True, exact=m.exact, saves_ms=m.saves_ms,
                     costs_ms=m.costs_ms, quality_before=m.quality_before, quality_after=m.quality_after,
                     points_lost=m.points_lost, macs_saved=m.macs_saved, params_saved=m.params_saved, code="",
                     reason=m.detail) for m in self.merges]
        skipped = [dict(kind=s.kind, layers=", ".join(s.layers), made=False, code=s.code, reason=s.reason)
                   for s in self.skipped]
        quantized = self.quantization
        step = [dict(kind=quantized.scheme, layers=", ".join(quantized.layers), made=quantized.applied,
                     quality_before=quantized.quality_before, quality_after=quantized.runtime_quality
                     if quantized.runtime_quality is not None else quantized.quality_after, code=quantized.code or "",
                     reason=quantized.reason or "")] if quantized else []
        return pandas.DataFrame(made + skipped + step)

    def programs(self) -> tuple[OutputFile, ...]:
        """The .pte files written, the slimmed program first."""
        return tuple(file for file in self.files if file.kind == PTE)

    @property
    def removed(self) -> tuple[str, ...]:
        """Every layer the applied merges removed."""
        return tuple(layer for merge in self.merges for layer in merge.removed)


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a slim.json of any known version up to ``SCHEMA_VERSION``."""
    version = data.get("schema_version")
    if not isinstance(version, int) or "merges" not in data:
        raise ValueError("no schema_version or no merges")
    if version > SCHEMA_VERSION:
        raise ValueError(f"schema_version {version} is newer than this rebirth ({SCHEMA_VERSION}); upgrade rebirth")
    if version == 1:
        # Version 1 named no removed layers; its passes that remove layers were all called remove_*.
        data["merges"] = [{**merge, "removed": merge.get("layers", []) if merge.get("kind", "").startswith("remove_")
                           else []} for merge in data["merges"]]
        data["schema_version"] = version = 2
    if version in (2, 3):  # new fields only, all optional (3: fidelity and quantization; 4: per-step savings)
        data["schema_version"] = version = 4
    if version == 4:
        data["files"] = [dataclasses.asdict(file) for file in _files_written_before(data)]
        data["schema_version"] = version = 5
    if version == 5:
        data["skipped"] = [dict(skip, code=_skip_code(skip.get("reason", ""))) for skip in data.get("skipped", ())]
        if data.get("quantization") and not data["quantization"].get("applied"):
            data["quantization"] = dict(data["quantization"],
                                        code=_quantization_code(data["quantization"].get("reason") or ""))
        data["schema_version"] = version = 6
    if version == 6:  # a new optional field: the allocation
        data["schema_version"] = version = 7
    if version == 7:
        if data.get("quantization"):
            data["quantization"] = _post_training_only(data["quantization"])
        data["schema_version"] = version = 8
    if version == 8:  # new optional fields only: the evidence's confidence and bound
        data["schema_version"] = SCHEMA_VERSION
    return data


def _post_training_only(step: dict[str, Any]) -> dict[str, Any]:
    """A quantization record of version 7 or earlier in version 8: int8 was made after training where a program was
    made (its layers are named), and what it lost is its evidence's, where it has one."""
    if not step.get("layers"):
        return step
    evidence = step.get("evidence")
    attempts = [dataclasses.asdict(QuantizationAttempt(PTQ, evidence["lost"], RUNTIME if step.get("runtime_quality")
                                                       is not None else SIMULATION))] if evidence else []
    return dict(step, method=PTQ, attempts=attempts)


def _skip_code(reason: str) -> str:
    return "small_gain" if reason.startswith("saves ~") else "over_budget"


def _quantization_code(reason: str) -> str:
    """The code of a version-5 quantization record's reason, from the words its writer used."""
    for words, code in (("needs data", "no_data"), ("quantizer refused", "quantizer_refused"),
                        ("runtime cannot run", "runtime_refused"), ("as ExecuTorch's runtime runs it",
                        "over_budget_at_runtime"), ("the int8 program ran", "slower_on_device")):
        if words in reason:
            return code
    return "over_budget"


def _files_written_before(data: dict[str, Any]) -> list[OutputFile]:
    """What the writer of version 4 and earlier records wrote, by its rules: slim.pte with its .pt2 and
    ETRecord; slim-float.pte beside an applied int8 program; slim-merged.pte once a channel reduction or a
    decomposition followed the merges, slim-reduced.pte once both did; slim.json."""
    steps = {merge.get("kind") for merge in data["merges"]}
    compressions = {"reduce_channels", "low_rank"}
    written: list[tuple[str, tuple[str, ...]]] = [(SLIM, (PT2, PTE, ETRECORD))]
    if (data.get("quantization") or {}).get("applied"):
        written.append((FLOAT, (PT2, PTE, ETRECORD)))
    if steps & compressions:
        written.append((MERGED, (PTE, ETRECORD)))
    if compressions <= steps:
        written.append((REDUCED, (PTE, ETRECORD)))
    files = [OutputFile(program_name(role, kind), role, kind, ABOUT.get(role, "")) for role, kinds in written
             for kind in kinds]
    return files + [OutputFile("slim.json", RECORD, JSON)]


ABOUT = {FLOAT: "the same model in float, not quantized", MERGED: "the merges alone",
         REDUCED: "before the decomposition"}
"""What each known program is, for a reader (``OutputFile.about``)."""


def program_name(role: str, kind: str = PTE) -> str:
    """The file name of a program's file: ``slim.pte`` for the slimmed program, else ``slim-ROLE.pte``."""
    return f"slim.{kind}" if role == SLIM else f"slim-{role}.{kind}"
