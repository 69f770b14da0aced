"""int8 quantization as the slimmer's last step: ExecuTorch's PT2E flow, judged like a merge, kept only within
the budget and only when the runtime can run what it made."""

import json

import pytest
import torch

from rebirth import cli
from rebirth.contract.slim import SlimRecord

pytestmark = pytest.mark.slow  # trains and lowers int8 programs, and runs whole commands

NET = """
import torch
from torch import nn

from rebirth.models.zoo.lrn import LocalResponseNorm  # torch's pads in 3-D, which the runtime has no kernel for

LRN = {lrn}


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        self.lrn = LocalResponseNorm(5) if LRN else nn.Identity()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(self.lrn(self.relu1(self.bn1(self.conv1(x)))))
        return self.fc(torch.flatten(self.gap(self.relu2(self.conv2(x))), 1))


def make():
    net = Net()
    net.load_state_dict(torch.load({weights!r}, weights_only=True))
    return net.eval(), (torch.randn(1, 3, 16, 16),)
"""

DATA = """
from rebirth.slimmer.data import digits


def loaders():
    return digits(16)
"""


BUDGET = "3"
"""Held-out points int8 may cost the small nets (about 75% top-1 at 16 px, so int8 changes dozens of the 899
held-out predictions either way: at 1 point, its bound at 95% would be over the budget however few it lost)."""

@pytest.fixture(scope="module")
def trained_nets(tmp_path_factory):
    """Two small digit classifiers trained at 16 px, one with an LRN (XNNPACK cannot run it in int8)."""
    from rebirth.slimmer.data import digits
    from rebirth.slimmer.train import train

    root = tmp_path_factory.mktemp("nets")
    (root / "digits16.py").write_text(DATA)
    accuracy = {}
    for lrn in (False, True):
        name = "lrn_net" if lrn else "net"
        namespace: dict = {}
        exec(NET.format(lrn=lrn, weights=""), namespace)  # the class only
        torch.manual_seed(0)
        model = namespace["Net"]()
        loaders = digits(16)
        accuracy[name] = train(model, loaders.train, loaders.held_out, 20, 3e-3).top1
        torch.save(model.state_dict(), root / f"{name}.pt")
        (root / f"{name}.py").write_text(NET.format(lrn=lrn, weights=str(root / f"{name}.pt")))
    return root, accuracy


def _slim(root, tmp_path, monkeypatch, model, *extra):
    from types import SimpleNamespace

    from rebirth.contract.profile import Profile

    measured = SimpleNamespace(ops=[SimpleNamespace(layer="conv2", p50_ms=1.0),
                                    SimpleNamespace(layer="lrn", p50_ms=0.5)])
    monkeypatch.setattr(Profile, "load", classmethod(lambda cls, path: measured))
    (tmp_path / "p.json").write_text("{}")
    monkeypatch.chdir(root)
    out = tmp_path / "out"
    code = cli.main(["slim", model, "--profile", str(tmp_path / "p.json"), "--data", "digits16:loaders",
                     "--skip", "reduce_channels,low_rank", "-o", str(out), *extra])
    return code, out


def test_int8_keeps_the_accuracy_within_the_budget_and_shrinks_the_weights(trained_nets, tmp_path, monkeypatch, capsys):
    root, accuracy = trained_nets
    assert accuracy["net"] > 50  # it learned the digits, so top-1 judges it
    code, out = _slim(root, tmp_path, monkeypatch, "net.py:make", "--exact-only", "--max-accuracy-drop", BUDGET)
    printed = " ".join(capsys.readouterr().out.split())
    assert code == 0
    record = SlimRecord.load(out / "slim.json")
    step = record.quantization
    assert record.accuracy.metric == "top1" and step is not None and step.applied, step
    assert set(step.layers) == {"conv1", "conv2", "fc"} and step.calibration_samples == 512
    assert step.quality_before == pytest.approx(accuracy["net"])
    assert step.quality_after is None  # judged as the runtime runs it alone: no pass of PyTorch's simulation
    assert step.runtime_quality is not None and step.runtime_quality >= step.quality_before - float(BUDGET)  # as run
    assert step.evidence is not None and step.evidence.bound <= float(BUDGET)  # kept on its bound
    assert step.weight_bytes_after < 0.45 * step.weight_bytes_before  # int8 weights, float biases and scales
    assert "quantized to int8: 3 layers" in printed and "slim-float.pte" in printed
    assert f"{step.runtime_quality:.1f}% as ExecuTorch's runtime runs it" in printed
    assert record.accuracy.after.top1 == step.runtime_quality  # the "after" of slim.pte is what it scores running

    from rebirth.models import read_pte
    from rebirth.slimmer.quantize import runtime_refusal

    assert read_pte(out / "slim.pte").constant_bytes == step.weight_bytes_after
    assert read_pte(out / "slim-float.pte").constant_bytes == step.weight_bytes_before
    assert runtime_refusal(out / "slim.pte") is None
    program = torch.export.load(str(out / "slim.pt2")).module()
    assert any("quantize" in str(node.target) for node in program.graph.nodes)  # the int8 model, not the float


def test_int8_the_runtime_cannot_run_leaves_the_float_model_and_says_why(trained_nets, tmp_path, monkeypatch):
    root, _ = trained_nets
    code, out = _slim(root, tmp_path, monkeypatch, "lrn_net.py:make", "--exact-only", "--max-accuracy-drop", "5")
    assert code == 0
    step = SlimRecord.load(out / "slim.json").quantization
    assert step is not None and not step.applied and step.code == "runtime_refused"
    assert not (out / "slim-float.pte").exists() and not list(out.glob(".slim-int8*"))

    from rebirth.slimmer.quantize import runtime_refusal

    assert runtime_refusal(out / "slim.pte") is None  # what is left runs
    program = torch.export.load(str(out / "slim.pt2")).module()
    assert not any("quantize" in str(node.target) for node in program.graph.nodes)


def test_int8_that_cannot_be_lowered_leaves_the_float_model_with_its_simulated_evidence(trained_nets, tmp_path,
                                                                                        monkeypatch):
    """Lowering is the first thing done to a post-training int8 model now (no simulated pass before it): a
    lowering that fails refuses int8 in one line, with what the simulation says it loses as the evidence."""
    from rebirth.slimmer.steps import int8 as int8_step

    root, _ = trained_nets

    def refuse(*args, **kwargs):
        raise RuntimeError("no int8 kernel for this pad\nmore detail")

    monkeypatch.setattr(int8_step._Candidates, "make", classmethod(refuse))
    code, out = _slim(root, tmp_path, monkeypatch, "net.py:make", "--exact-only", "--max-accuracy-drop", BUDGET,
                      "--qat-steps", "0")
    assert code == 0
    step = SlimRecord.load(out / "slim.json").quantization
    assert step is not None and not step.applied and step.code == "runtime_refused"
    assert "cannot be lowered (RuntimeError: no int8 kernel for this pad)" in step.reason
    assert step.evidence is not None and step.quality_after == step.evidence.quality and step.runtime_quality is None
    assert not (out / "slim-float.pte").exists()


def test_int8_that_the_runtime_runs_over_the_budget_is_not_kept(trained_nets, tmp_path, monkeypatch):
    """PyTorch's simulation of the int8 arithmetic is not the program: when what the runtime computes on the
    held-out samples loses more than the budget, the float program stays, whatever the simulation said."""
    from rebirth.slimmer import quantize as slimmer_quantize
    root, _ = trained_nets
    ran = {}

    def constant_logits(pte, loader):  # as if the int8 kernels had gone wrong on the device's runtime
        ran["samples"] = sum(len(labels) for _, labels in loader)
        return torch.zeros(ran["samples"], 10)

    monkeypatch.setattr(slimmer_quantize, "runtime_outputs", constant_logits)
    code, out = _slim(root, tmp_path, monkeypatch, "net.py:make", "--exact-only", "--max-accuracy-drop", BUDGET,
                      "--qat-steps", "0")  # post-training int8 alone: QAT would try again (tests/test_slimmer_qat.py)
    assert code == 0 and ran["samples"] == 899
    step = SlimRecord.load(out / "slim.json").quantization
    assert step is not None and not step.applied and step.runtime_quality is not None and step.runtime_quality < 20
    assert step.code == "over_budget_at_runtime" and "as ExecuTorch's runtime runs it" in step.reason
    program = torch.export.load(str(out / "slim.pt2")).module()
    assert not any("quantize" in str(node.target) for node in program.graph.nodes)  # the float model stands


def test_int8_over_the_budget_is_not_applied(trained_nets, tmp_path, monkeypatch):
    root, _ = trained_nets
    # An untrained model is judged by output fidelity, which int8 cannot keep at 100%: a zero budget refuses it.
    (root / "untrained.py").write_text("from net import Net\nimport torch\n\n"
                                       "def make():\n    torch.manual_seed(1)\n    return Net().eval(), "
                                       "(torch.randn(1, 3, 16, 16),)\n")
    code, out = _slim(root, tmp_path, monkeypatch, "untrained.py:make", "--exact-only", "--max-accuracy-drop", "0")
    assert code == 0
    record = json.loads((out / "slim.json").read_text())
    step = record["quantization"]
    assert record["accuracy"]["metric"] == "fidelity" and not step["applied"]
    assert step["code"] == "over_budget_at_runtime" and step["runtime_quality"] < 100
    assert not (out / "slim-float.pte").exists()


def test_quantization_without_data_to_calibrate_on_is_not_applied():
    from torch import nn

    from rebirth.slimmer.slim import SlimOptions, slim

    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    result = slim(model, (torch.randn(1, 8),), {}, None, False, SlimOptions())
    assert result.program("float") is None and result.programs[0].model is result.model  # the float model stands
    assert not result.quantization.applied
    assert result.quantization.code == "no_data"


@pytest.mark.parametrize("command", ["slim", "optimize"])
def test_int8_for_the_portable_backend_is_refused_before_any_work(command, tmp_path, capsys):
    code = cli.main([command, "zoo:googlenet-small", "--backend", "portable", "--quantize", "int8",
                     "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "--quantize int8 makes a program for XNNPACK" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_optimize_keeps_the_float_program_where_int8_runs_slower_on_the_device(trained_nets, tmp_path, monkeypatch,
                                                                              capsys):
    """int8 is not faster everywhere (XNNPACK's depthwise layers): optimize times the int8 slim.pte against
    slim-float.pte on the device first. This host runs this net's int8 program at least as fast, so the
    timing of that pair is made to say "surely slower" (its whole interval below 1); everything else is real."""
    import dataclasses

    from rebirth.contract.slim import SlimRecord
    from rebirth.profiler import paired as profiler_paired

    real = profiler_paired.compare_programs
    timed = []

    def int8_slower(a, b, *args, **kwargs):
        result = real(a, b, *args, **kwargs)
        timed.append((a.source, b.source))
        if str(a.source).endswith("slim-float.pte"):
            result = dataclasses.replace(result, comparison=dataclasses.replace(result.comparison, ratio=1.2,
                                                                                low=1.1, high=1.3))
        return result

    monkeypatch.setattr(profiler_paired, "compare_programs", int8_slower)
    root, _ = trained_nets
    monkeypatch.chdir(root)
    out = tmp_path / "out"
    code = cli.main(["optimize", "net.py:make", "--data", "digits16:loaders", "--skip", "reduce_channels,low_rank",
                     "--max-accuracy-drop", BUDGET, "--iterations", "10", "--precision", "20", "-o", str(out)])
    printed = " ".join("".join(capsys.readouterr()).split())
    assert code == 0
    assert len(timed) == 2 and str(timed[0][0]).endswith("slim-float.pte")  # int8 timed first, then the headline's
    record = SlimRecord.load(out / "slim.json")
    step = record.quantization
    assert step is not None and not step.applied and step.code == "slower_on_device"
    assert "on local the int8 program ran 0.83x" in step.reason
    assert record.accuracy.after.top1 == step.quality_before  # the float program's score, not the int8 one's
    assert "not quantized: on local the int8 program ran 0.83x" in printed
    assert not (out / "slim-float.pte").exists()
    program = torch.export.load(str(out / "slim.pt2")).module()
    assert not any("quantize" in str(node.target) for node in program.graph.nodes)  # slim.pte is the float one
