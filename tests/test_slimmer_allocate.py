"""Every technique by default, with the one budget shared across them by what each buys per point: int8's
post-training cost is probed on the merged model and held back from the compressions when int8 buys more per
point, and int8 refused for lack of budget a compression spent is tried on the model from before it."""

import json
import re

import pytest
import torch

from rebirth import cli
from rebirth.contract.slim import RUN, SKIPPED, UNAVAILABLE, MergeRecord, SlimRecord
from rebirth.slimmer import SlimOptions, StepResult, steps
from rebirth.slimmer.graph import trace
from rebirth.slimmer.passes import Match
from rebirth.slimmer.plan import Candidate
from tests.digitsnet import DigitsNet, times_by_work

pytestmark = pytest.mark.slow  # quantizes, lowers and runs int8 programs

INPUTS = (torch.randn(1, 3, 16, 16),)


class SpendBudget:
    """A compression registered by the tests alone: it shrinks the logits toward zero by the share that loses
    ``spend`` points of output fidelity, exactly, and claims ``claimed_ms`` for it in its offer (what the
    allocation weighs) and ``saves_ms`` in its record (what the revisit weighs)."""

    name = "spend_budget"

    def __init__(self, spend: float, claimed_ms: float, saves_ms: float = 0.01):
        self.spend, self.claimed_ms, self.saves_ms = spend, claimed_ms, saves_ms

    def offers(self, model, context):
        match = Match(self.name, ("fc",), ("fc",), False)
        return [(Candidate(match, self.claimed_ms, 0.0, 0), None)]

    def run(self, model, judge, context):
        logits = judge.teacher_logits
        signal = (logits - logits.mean(0, keepdim=True)).norm()
        share = self.spend / 100 * signal / logits.norm()  # fidelity lost is 100 * share * |y| / signal
        shrunk = trace(model)
        with torch.no_grad():
            shrunk.fc.weight.mul_(1 - share)
            shrunk.fc.bias.mul_(1 - share)
        evidence = judge.examine(shrunk)
        if not evidence.within:
            return StepResult(model)
        record = MergeRecord(self.name, ("fc",), False, ("fc",), saves_ms=self.saves_ms,
                             quality_after=evidence.quality, quality_before=context.quality, evidence=evidence)
        return StepResult(shrunk, evidence.quality, (record,))


@pytest.fixture
def untrained():
    """An untrained DigitsNet (judged by output fidelity, which int8 always moves a little), the digits at 16 px,
    and what post-training int8 costs it in fidelity points."""
    from rebirth.slimmer.data import digits
    from rebirth.slimmer.judge import fidelity
    from rebirth.slimmer.quantize import calibration_batches, quantize_int8
    from rebirth.slimmer.train import logits_of

    torch.manual_seed(0)
    model, loaders = DigitsNet().eval(), digits(16)
    quantized = quantize_int8(model, INPUTS, calibration_batches(loaders.train))
    cost = 100 - fidelity(logits_of(quantized.module, loaders.held_out)[0], logits_of(model, loaders.held_out)[0])
    assert 0.05 < cost < 20
    return model, loaders, cost


def _slim_with(step, model, loaders, budget, monkeypatch, said):
    from rebirth.slimmer.slim import slim

    monkeypatch.setattr(steps, "STEPS", list(steps.STEPS))
    steps.register(step.name, lambda options: step, before="int8")
    # Post-training int8 only: quantization-aware training would bring int8 within the budget on top of the
    # compression (it runs before any revisit), and these tests are about how the budget is shared.
    options = SlimOptions(skip=("merges", "reduce_channels", "low_rank"), max_accuracy_drop=budget, qat_steps=0)
    return slim(model, INPUTS, times_by_work(model, INPUTS), loaders, trained=False, options=options,
                say=said.append)


def test_int8_refused_for_the_budget_a_compression_spent_is_revisited_and_kept(untrained, monkeypatch):
    """The compression's offer claims more per point than int8, so it gets the budget first and spends nearly all
    of it; int8 on top is over the budget; int8 on the model from before the compression is within it, and the
    profile predicts more for it than for the compression: that combination stands."""
    model, loaders, cost = untrained
    budget = 2 * cost
    said: list[str] = []
    result = _slim_with(SpendBudget(0.9999 * budget, claimed_ms=1e6), model, loaders, budget, monkeypatch, said)
    allocation = result.allocation
    assert allocation.reserved == 0 and "the compressions buy more per point" in allocation.rule
    assert result.steps == ("spend_budget", "int8")
    (revisit,) = allocation.revisits
    assert revisit.kept and revisit.dropped == ("spend_budget",) and revisit.speedup_with > revisit.speedup_without
    assert result.quantization.applied and result.quantization.evidence.lost <= budget
    assert not result.merges  # the compression is undone ...
    (undone,) = result.skipped
    assert undone.kind == "spend_budget" and undone.code == "revisited"  # ... and says why
    assert torch.equal(result.model.fc.weight, model.fc.weight)  # the float model beside int8 is the original's
    assert any(line.startswith("revisit: int8 on the model before spend_budget") for line in said)


def test_int8_that_buys_more_per_point_has_its_cost_held_back_from_the_compressions(untrained, monkeypatch):
    model, loaders, cost = untrained
    budget = 2 * cost
    said: list[str] = []
    result = _slim_with(SpendBudget(1.5 * cost, claimed_ms=1e-3), model, loaders, budget, monkeypatch, said)
    allocation = result.allocation
    assert allocation.probe is not None and allocation.reserved == allocation.probe.lost  # nothing spent before
    assert allocation.reserved == pytest.approx(cost, rel=0.25)  # calibrated on other shuffled batches
    assert "are held for int8" in allocation.rule and any(line.startswith("budget: int8 buys") for line in said)
    assert not result.merges  # 1.5x int8's cost is more than the budget less int8's
    assert result.quantization.applied and allocation.revisits == ()
    estimates = {estimate.name: estimate for estimate in allocation.techniques}
    assert estimates["int8"].cost == allocation.reserved and estimates["int8"].gain_ms > 0
    assert estimates["spend_budget"].gain_ms == pytest.approx(1e-3) and estimates["merges"].status == SKIPPED


def test_by_default_every_technique_runs_and_the_record_says_what_each_bought(trained_digits_net, tmp_path,
                                                                              monkeypatch, capsys):
    _, _, source = trained_digits_net
    profile = _profile_by_work(monkeypatch, tmp_path, trained_digits_net[0])
    out = tmp_path / "out"
    code = cli.main(["slim", f"{source}:make", "--data", f"{source}:loaders", "--profile", str(profile),
                     "--min-gain", "5", "-o", str(out)])
    printed = " ".join(capsys.readouterr().out.split())
    assert code == 0
    record = SlimRecord.load(out / "slim.json")
    assert [(t.name, t.status) for t in record.allocation.techniques] == [
        ("merges", RUN), ("reduce_channels", RUN), ("low_rank", RUN), ("int8", RUN)]
    assert record.quantization is not None and record.allocation.probe is not None
    assert {m.kind for m in record.merges} & {"reduce_channels", "low_rank"}  # the compressions ran and kept some
    assert record.accuracy.before.top1 - record.accuracy.after.top1 <= 0.5
    assert "each technique: merges" in printed and "int8 kept" in printed and "budget 0.5 points:" in printed
    for name in ("reduce_channels", "low_rank"):  # each technique's own change in words, not a sign read both ways
        lost = sum(m.points_lost for m in record.merges if m.kind == name)
        if any(m.kind == name for m in record.merges):
            said = "no points lost" if round(lost, 2) == 0 else \
                f"{lost:.2f} points lost" if lost > 0 else f"{-lost:.2f} points gained"
            assert re.search(rf"{name} ~[0-9.]+ ms in \d+ steps?, {said}", printed), printed
    assert json.loads((out / "slim.json").read_text())["schema_version"] == 9


def _profile_by_work(monkeypatch, tmp_path, model):
    from types import SimpleNamespace

    from rebirth.contract.profile import Profile

    measured = SimpleNamespace(ops=[SimpleNamespace(layer=layer, p50_ms=ms)
                                    for layer, ms in times_by_work(model, INPUTS).items()])
    monkeypatch.setattr(Profile, "load", classmethod(lambda cls, path: measured))
    (tmp_path / "p.json").write_text("{}")
    return tmp_path / "p.json"


def test_skip_leaves_techniques_out_and_the_portable_backend_skips_int8_saying_so(trained_digits_net, tmp_path,
                                                                                  monkeypatch, capsys):
    _, _, source = trained_digits_net
    profile = _profile_by_work(monkeypatch, tmp_path, trained_digits_net[0])
    out = tmp_path / "out"
    code = cli.main(["slim", f"{source}:make", "--data", f"{source}:loaders", "--profile", str(profile),
                     "--backend", "portable", "--skip", "reduce_channels,low_rank", "--exact-only", "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    record = SlimRecord.load(out / "slim.json")
    status = {t.name: (t.status, t.reason) for t in record.allocation.techniques}
    assert status["reduce_channels"] == (SKIPPED, "--skip") and status["low_rank"] == (SKIPPED, "--skip")
    assert status["int8"][0] == UNAVAILABLE and "made for XNNPACK" in status["int8"][1]
    assert record.quantization is None and not {m.kind for m in record.merges} & {"reduce_channels", "low_rank"}
    assert "int8 not made: int8 is made for XNNPACK" in " ".join(captured.err.split())
    assert sorted(path.name for path in out.glob("*.pte")) == ["slim.pte"]


@pytest.mark.parametrize("command", ["slim", "optimize"])
def test_an_unknown_technique_is_one_line_and_exit_2_before_any_work(command, tmp_path, capsys):
    code = cli.main([command, "zoo:googlenet-small", "--skip", "int8,pruning", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "--skip pruning: no such technique (the techniques: merges, reduce_channels, low_rank, int8)" in err
    assert not (tmp_path / "out").exists()


def test_the_flags_of_the_techniques_that_are_the_default_now_say_so(capsys):
    from rebirth.cli.commands.slimming import slim_options

    args = cli.build_parser().parse_args(["slim", "zoo:x", "--decompose", "--quantize", "int8", "-o", "out"])
    options = slim_options(args)
    err = capsys.readouterr().err
    assert options.skip == ()
    assert "note: --decompose is the default now (every technique runs; --skip low_rank turns it off)" in err
    assert "note: --quantize int8 is the default now" in err
