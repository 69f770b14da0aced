"""Each technique is a step behind one protocol: the driver runs the registered steps the options ask for, records
each, and writes the programs they offer, each once under its final name, listed in slim.json."""

import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from rebirth.contract.slim import (
    ETRECORD,
    FLOAT,
    MERGED,
    PT2,
    PTE,
    RECORD,
    REDUCED,
    SCHEMA_VERSION,
    SLIM,
    MergeRecord,
    SlimRecord,
)
from rebirth.slimmer import Program, SlimOptions, StepResult, run_passes, steps
from rebirth.slimmer.passes import RemoveNoOps
from rebirth.slimmer.slim import chosen_programs

NET = """
import torch
from torch import nn


def make():
    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("conv", nn.Conv2d(3, 8, 3, padding=1))
    net.add_module("bn", nn.BatchNorm2d(8))
    net.add_module("relu", nn.ReLU())
    net.add_module("drop", nn.Dropout(0.1))
    net.add_module("pool", nn.AdaptiveAvgPool2d(1))
    net.add_module("flat", nn.Flatten())
    net.add_module("fc", nn.Linear(8, 10))
    with torch.no_grad():  # warmed statistics, so folding the BatchNorm is a real change
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
    return net.eval(), (torch.randn(1, 3, 16, 16),)
"""


class RemoveDropout:
    """A trivial technique, registered by the test alone: the dropouts go, and the model after it is offered."""

    name = "remove_dropout"

    def offers(self, model, context):
        return []

    def run(self, model, judge, context):
        gm, applied = run_passes(model, [RemoveNoOps()])
        records = tuple(MergeRecord(self.name, match.layers, True, removed=match.removed) for match in applied)
        return StepResult(gm, merges=records, programs=(Program("nodropout", gm, about="the dropouts removed"),))


def test_a_registered_step_is_run_recorded_and_its_program_written_and_listed(tmp_path, monkeypatch):
    from rebirth.contract.profile import Profile
    from rebirth.slimmer.quantize import runtime_refusal
    from rebirth.usecases.slimming import SlimRequest, slim_model

    monkeypatch.setattr(steps, "STEPS", list(steps.STEPS))
    steps.register("remove_dropout", lambda options: RemoveDropout(), before="merges")
    (tmp_path / "net.py").write_text(NET)
    monkeypatch.chdir(tmp_path)
    measured = SimpleNamespace(ops=[SimpleNamespace(layer="bn", p50_ms=0.5), SimpleNamespace(layer="conv", p50_ms=1.0)])
    monkeypatch.setattr(Profile, "load", classmethod(lambda cls, path: measured))
    out = tmp_path / "out"
    record = slim_model(SlimRequest(model="net.py:make", outdir=out, profile=tmp_path / "p.json",
                                    options=SlimOptions(exact_only=True, skip=("reduce_channels", "low_rank",
                                                                                "int8"))))
    assert [m.kind for m in record.merges][:2] == ["remove_dropout", "fold_bn"]  # in the registry's order
    assert record.merges[0].layers == ("drop",) and record.merges[0].removed == ("drop",)
    mine = [file for file in record.files if file.role == "nodropout"]
    assert [(f.name, f.kind, f.about) for f in mine] == [("slim-nodropout.pte", PTE, "the dropouts removed"),
                                                         ("slim-nodropout.etrecord", ETRECORD, "the dropouts removed")]
    assert [file.name for file in record.files if file.role == SLIM] == ["slim.pt2", "slim.pte", "slim.etrecord"]
    assert record.files[-1].role == RECORD and record.files[-1].name == "slim.json"
    assert sorted(path.name for path in out.iterdir()) == sorted(file.name for file in record.files)  # all, only
    assert SlimRecord.load(out / "slim.json") == record
    assert runtime_refusal(out / "slim-nodropout.pte") is None and runtime_refusal(out / "slim.pte") is None


def test_the_registry_runs_every_technique_in_order_unless_skipped():
    names = [step.name for step in steps.steps_for(SlimOptions())]
    assert names == ["merges", "reduce_channels", "low_rank", "int8"] == steps.technique_names()
    assert [step.name for step in steps.steps_for(SlimOptions(skip="reduce_channels, int8"))] == ["merges", "low_rank"]
    assert [step.name for step in steps.steps_for(SlimOptions(backend="portable"))] == names[:3]  # no int8 kernels
    with pytest.raises(ValueError, match="registered already"):
        steps.register("merges", lambda options: None)
    with pytest.raises(ValueError, match="no step named"):
        steps.register("other", lambda options: None, before="nosuch")


def test_options_and_requests_are_keyword_only():
    from rebirth.usecases.slimming import OptimizeRequest, SlimRequest

    with pytest.raises(TypeError):
        SlimOptions("xnnpack")  # type: ignore[misc]
    with pytest.raises(TypeError):
        SlimRequest("zoo:googlenet-small", "out")  # type: ignore[misc]
    request = OptimizeRequest(model="zoo:googlenet-small", outdir="out", options=SlimOptions(skip=["int8"]))
    assert request.options.skip == ("int8",) and request.options.max_accuracy_drop == 0.5


def _models(count: int) -> list[nn.Module]:
    return [nn.Identity() for _ in range(count)]


def test_each_model_is_written_once_under_the_latest_steps_name():
    merged, reduced, decomposed, quantized = _models(4)

    def roles(final, *offered):
        return [program.role for program in chosen_programs(final, offered)]

    assert roles(merged, Program(MERGED, merged)) == [SLIM]  # the merges alone are the slimmed program
    assert roles(decomposed, Program(MERGED, merged), Program(REDUCED, reduced)) == [SLIM, MERGED, REDUCED]
    assert roles(reduced, Program(MERGED, merged), Program(REDUCED, reduced)) == [SLIM, MERGED]
    int8 = (Program(MERGED, merged), Program(SLIM, quantized), Program(FLOAT, merged))
    chosen = chosen_programs(merged, int8)
    assert [(p.role, p.model) for p in chosen] == [(SLIM, quantized), (FLOAT, merged)]  # float, not "merged"


def _version_4(quantized: bool, kinds: list[str]) -> dict:
    record = SlimRecord("zoo:x", "xnnpack", None, tuple(MergeRecord(kind, ("a",), False) for kind in kinds))
    data = record.to_dict()
    del data["files"]
    data["schema_version"] = 4
    if quantized:
        data["quantization"] = {"scheme": "int8", "applied": True}
    return data


@pytest.mark.parametrize("quantized, kinds, programs", [
    (False, ["fold_bn"], ["slim.pte"]),
    (True, ["fold_bn", "low_rank"], ["slim.pte", "slim-float.pte", "slim-merged.pte"]),
    (False, ["reduce_channels", "low_rank"], ["slim.pte", "slim-merged.pte", "slim-reduced.pte"]),
])
def test_a_version_4_record_lists_the_files_its_writer_wrote(tmp_path, quantized, kinds, programs):
    (tmp_path / "slim.json").write_text(json.dumps(_version_4(quantized, kinds)))
    record = SlimRecord.load(tmp_path / "slim.json")
    assert [file.name for file in record.programs()] == programs
    assert {f.kind for f in record.files if f.role == SLIM} == {PT2, PTE, ETRECORD}
    assert record.files[-1].name == "slim.json" and record.schema_version == SCHEMA_VERSION


def _judged(lost: int, gained: int, confidence: float = 0.95):
    """The evidence of a student that loses ``lost`` of 899 held-out samples the original got right and gains
    ``gained`` it got wrong, judged at ``confidence`` against a 0.5-point budget."""
    from rebirth.slimmer import Judge

    samples = 899
    labels = torch.arange(samples) % 10
    teacher = torch.nn.functional.one_hot(labels, 10).float()
    teacher[:20] = torch.nn.functional.one_hot((labels[:20] + 1) % 10, 10).float()  # the original misses 20
    student = teacher.clone()
    student[20:20 + lost] = torch.nn.functional.one_hot((labels[20:20 + lost] + 1) % 10, 10).float()
    student[:gained] = torch.nn.functional.one_hot(labels[:gained], 10).float()
    judge = Judge(SimpleNamespace(held_out=[(torch.zeros(samples, 1), labels)]), teacher, "top1",
                  100 * (samples - 20) / samples, 0.5, confidence)
    return judge, judge.examine_logits(student)


def test_one_judge_keeps_a_step_only_when_the_bound_of_what_it_loses_is_within_the_budget():
    from rebirth.slimmer.judge import upper_bound

    judge, one = _judged(1, 0)
    assert one.changed == 1 and one.lost == pytest.approx(100 / 899) and one.confidence == 0.95
    assert one.bound == pytest.approx(upper_bound(1, 0, 899, 0.95)) and one.within and one.fits()
    assert one.left == pytest.approx(0.5 - one.bound) and json.loads(json.dumps(dataclasses.asdict(one)))["left"] > 0
    judge, two = _judged(2, 0)  # 0.22 points lost is under the budget, its bound (0.54) is not
    assert two.lost < 0.5 < two.bound and not two.within and not two.fits()
    judge, traded = _judged(2, 1)  # one lost net, three changed
    assert traded.lost == pytest.approx(one.lost) and one.bound < traded.bound <= 0.5 and traded.within
    assert not traded.fits(margin=0.1)  # a margin (the runtime's gap, for QAT) counts against it
    judge, lenient = _judged(2, 0, confidence=0.5)  # at 50% the bound is the estimate
    assert lenient.bound == pytest.approx(lenient.lost) and lenient.within
    assert "at most 0.54 at 95% confidence" in two.said and judge.lost(judge.reference - 1.0) == pytest.approx(1.0)


def test_evidence_from_before_the_bound_is_held_to_its_estimate():
    from rebirth.contract.slim import Evidence

    old = Evidence("top1", 96.0, 0.45, 0.5, 450, 3, -0.2, 1.1)
    assert old.bound is None and old.held == 0.45 and old.within and old.said == "0.45 points lost"


def test_a_version_6_record_has_no_allocation_and_a_version_7_one_keeps_it_whole(tmp_path):
    from rebirth.contract.slim import RUN, Allocation, Evidence, Revisit, TechniqueEstimate

    data = SlimRecord("zoo:x", "xnnpack", None).to_dict()
    del data["allocation"]
    (tmp_path / "slim.json").write_text(json.dumps(dict(data, schema_version=6)))
    assert SlimRecord.load(tmp_path / "slim.json").allocation is None
    allocation = Allocation(0.5, 0.22, 0.22, "held for int8", (TechniqueEstimate("int8", RUN, gain_ms=1.5, cost=0.0),),
                            Evidence("top1", 97.0, 0.0, 0.5, 450, 1, -0.4, 0.4),
                            (Revisit(("reduce_channels",), 1.6, 2.3, True, "within"),), 2.3, 2.0)
    record = SlimRecord("zoo:x", "xnnpack", None, allocation=allocation)
    record.save(tmp_path / "slim.json")
    assert SlimRecord.load(tmp_path / "slim.json") == record


def test_scoring_runs_a_large_batch_in_pieces_and_gives_the_same_logits_and_labels_in_order():
    """A loader's batch of big images is scored in pieces of at most ``INFERENCE_ELEMENTS`` (a batch of 128 at
    224 px ran GoogLeNet 3x slower per image than pieces of 8), with nothing lost, reordered or changed."""
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from rebirth.slimmer.train import INFERENCE_ELEMENTS, evaluate, logits_of

    seen = []

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.head = nn.Conv2d(3, 4, 3, stride=8), nn.Linear(4, 10)

        def forward(self, images):
            seen.append(len(images))
            return self.head(self.conv(images).mean((2, 3)))

    torch.manual_seed(0)
    net = Net().eval()
    images, labels = torch.randn(21, 3, 224, 224), torch.arange(21) % 10
    loader = DataLoader(TensorDataset(images, labels), batch_size=20)
    logits, got = logits_of(net, loader)
    assert seen == [8, 8, 4, 1] and INFERENCE_ELEMENTS == 8 * 3 * 224 * 224
    assert torch.equal(got, labels)
    with torch.no_grad():
        whole = net(images)
    assert torch.allclose(logits, whole, atol=1e-5)  # the same logits, in the loader's order
    seen.clear()
    small = DataLoader(TensorDataset(torch.randn(300, 3, 8, 8), torch.arange(300) % 10), batch_size=256)
    assert evaluate(net, small).samples == 300 and seen == [256, 44]  # small images: the loader's own batches


class _TwoPools(nn.Module):
    """DigitsNet with a ReLU and a pool module of its own after each conv, which a pool merge can fold."""

    def __init__(self):
        from tests.digitsnet import DigitsNet

        super().__init__()
        net = DigitsNet()
        self.conv1, self.conv2, self.conv3, self.fc = net.conv1, net.conv2, net.conv3, net.fc
        self.relu1, self.relu2, self.pool1, self.pool2 = nn.ReLU(), nn.ReLU(), nn.MaxPool2d(2), nn.MaxPool2d(2)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc(torch.relu(self.conv3(x)).mean((2, 3)))


@pytest.mark.parametrize("reference", [0.0, 100.0])
def test_the_whole_merged_model_is_tuned_again_only_where_the_learned_merges_lost_points(trained_digits_net,
                                                                                          monkeypatch, reference):
    """The quality the budget is counted from (``Judge.reference``) decides it: 0 means the merges lost nothing
    against it, 100 that they lost points; the same learned merges are kept either way."""
    from rebirth.slimmer.cost import layer_macs
    from rebirth.slimmer.graph import trace
    from rebirth.slimmer.judge import assess
    from rebirth.slimmer.slim import _lessons
    from rebirth.slimmer.steps import StepContext
    from rebirth.slimmer.steps.merges import MergeStep
    from tests.digitsnet import times_by_work

    trained, loaders, _ = trained_digits_net
    model = _TwoPools()
    model.load_state_dict(trained.state_dict())
    inputs = (torch.randn(1, 3, 16, 16),)
    options = SlimOptions(max_accuracy_drop=30.0, block_steps=4, end_to_end_steps=2)
    judge = dataclasses.replace(assess(trace(model), loaders, True, options.max_accuracy_drop).judge,
                                reference=reference)
    teacher = trace(model)
    context = StepContext(inputs, times_by_work(model, inputs), layer_macs(teacher, inputs), options,
                          _lessons(teacher, loaders, True), judge.reference)
    tuned, said = [], []
    original = MergeStep._tune_whole
    monkeypatch.setattr(MergeStep, "_tune_whole", lambda self, *args: tuned.append(1) or original(self, *args))
    result = MergeStep().run(teacher, judge, dataclasses.replace(context, say=said.append))
    assert [merge.kind for merge in result.merges if not merge.exact], (result.skipped, said)  # a learned one kept
    assert len(tuned) == (1 if reference == 100.0 else 0)
    assert any("fine-tuned the whole merged model" in line for line in said) == (reference == 100.0)
