"""The plan ranks merges by the time the profile measured, and `rebirth slim` refuses what it cannot slim."""

import copy

import pytest
import torch
from torch import nn

from rebirth import cli
from rebirth.models.zoo.lrn import LocalResponseNorm
from rebirth.slimmer.graph import count_modules, trace
from rebirth.slimmer.plan import candidates, layer_times, make_passes
from rebirth.slimmer.slim import slim


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2, 2)
        self.lrn = LocalResponseNorm(5)
        self.branch_pool = nn.MaxPool2d(3, 1, 1)
        self.branch = nn.Conv2d(8, 8, 1)
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        y = self.lrn(self.pool(self.relu(self.conv(x))))
        return self.drop(self.branch(self.branch_pool(y)).mean((2, 3)))


X = (torch.randn(1, 3, 16, 16),)


def ranked(times, exact_only=False):
    return [c for c, _ in candidates(trace(Net()), make_passes(X, exact_only), times, X)]


def test_merges_are_ranked_by_the_time_the_profile_measured():
    plan = ranked({"lrn": 2.0, "pool": 0.5, "conv": 1.0, "branch_pool": 0.1, "branch": 0.3})
    assert [c.match.kind for c in plan][:2] == ["remove_lrn", "merge_pool_into_conv"]
    assert plan[0].gain_ms == 2.0
    assert plan[1].gain_ms == 0.5 + 1.0 * 0.75  # the pool, and three quarters of the conv's work
    branch = next(c for c in plan if c.match.kind == "replace_pool_branch")
    assert branch.costs_ms == 0.3 * 8 and not branch.worthwhile  # a 3x3 conv costs more than the pool saved
    cheap = next(c for c in ranked({"branch_pool": 5.0, "branch": 0.1}) if c.match.kind == "replace_pool_branch")
    assert cheap.worthwhile


def test_exact_only_proposes_no_learned_merges():
    assert {c.match.kind for c in ranked({"lrn": 2.0}, exact_only=True)} == {"remove_no_op"}


def test_layer_times_sum_each_layers_ops():
    class Op:
        def __init__(self, layer, ms):
            self.layer, self.p50_ms = layer, ms

    assert layer_times([Op("a", 1.0), Op("a", 0.5), Op(None, 9.0), Op("b", 2.0)]) == {"a": 1.5, "b": 2.0}


def test_without_data_only_exact_merges_are_made_and_the_model_is_untouched():
    model = Net().eval()
    state = copy.deepcopy(model.state_dict())
    result = slim(model, X, {"lrn": 2.0, "pool": 1.0, "conv": 1.0}, loaders=None)
    assert [m.kind for m in result.merges] == ["remove_no_op"]
    assert count_modules(result.model, LocalResponseNorm) == 1
    torch.testing.assert_close(result.model(X[0]), model(X[0]))
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_slim_refuses_a_pte_and_a_pt2_in_one_line(capsys, firenet_ptes, tmp_path):
    assert cli.main(["slim", str(firenet_ptes["portable"]), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a .pte cannot be slimmed" in err and "zoo:NAME" in err
    pt2 = tmp_path / "m.pt2"  # a real export: its layers come back from unflatten as aten calls, not modules
    torch.export.save(torch.export.export(Net().eval(), X), pt2)
    assert cli.main(["slim", str(pt2), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a .pt2 cannot be slimmed" in err and "file.py:NAME" in err
    assert cli.main(["slim", "zoo:googlenet-small"]) == 2
    assert "-o OUTDIR" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_plan_is_printed_without_changing_anything(capsys, tmp_path, monkeypatch):
    import json
    from types import SimpleNamespace

    from rebirth.contract.profile import Profile

    source = tmp_path / "net.py"
    source.write_text("import torch\nfrom tests.test_slimmer_plan import Net, X\n\ndef make():\n    return Net(), X\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    measured = SimpleNamespace(ops=[SimpleNamespace(layer="lrn", p50_ms=2.0),
                                    SimpleNamespace(layer="pool", p50_ms=0.5)])
    monkeypatch.setattr(Profile, "load", classmethod(lambda cls, path: measured))  # a profile measured elsewhere
    (tmp_path / "p.json").write_text(json.dumps({}))
    assert cli.main(["slim", f"{source}:make", "--profile", str(tmp_path / "p.json"), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "remove_lrn" in out and "merge_pool_into_conv" in out and out.index("remove_lrn") < out.index("merge_pool")
    assert not any(path.name.startswith("slim") for path in tmp_path.rglob("*"))


USER_DATA = """
import torch
from torch.utils.data import DataLoader, TensorDataset

def loaders():
    g = torch.Generator().manual_seed(0)
    part = lambda n: TensorDataset(torch.randn(n, 3, 16, 16, generator=g), torch.randint(0, 8, (n,), generator=g))
    return DataLoader(part(64), batch_size=16), DataLoader(part(48), batch_size=16)

def wrong():
    return [1, 2, 3]
"""


def _profile_measured_elsewhere(monkeypatch, tmp_path):
    import json
    from types import SimpleNamespace

    from rebirth.contract.profile import Profile

    measured = SimpleNamespace(ops=[SimpleNamespace(layer="lrn", p50_ms=2.0),
                                    SimpleNamespace(layer="pool", p50_ms=0.5)])
    monkeypatch.setattr(Profile, "load", classmethod(lambda cls, path: measured))
    (tmp_path / "p.json").write_text(json.dumps({}))
    return str(tmp_path / "p.json")


def test_slim_learns_from_the_users_data_and_judges_an_untrained_model_by_its_outputs(capsys, tmp_path, monkeypatch):
    import json

    (tmp_path / "net.py").write_text("import torch\nfrom tests.test_slimmer_plan import Net, X\n\n"
                                     "def make():\n    torch.manual_seed(0)\n    return Net(), X\n")
    (tmp_path / "mydata.py").write_text(USER_DATA)
    monkeypatch.chdir(tmp_path)
    profile = _profile_measured_elsewhere(monkeypatch, tmp_path)
    assert cli.main(["slim", "net.py:make", "--profile", profile, "--data", "mydata:loaders", "--backend", "portable",
                     "--block-steps", "2", "--end-to-end-steps", "2", "--max-accuracy-drop", "100", "-o", "out"]) == 0
    captured = capsys.readouterr()
    assert "about chance" in " ".join((captured.out + captured.err).split())
    record = json.loads((tmp_path / "out" / "slim.json").read_text())
    assert record["accuracy"]["metric"] == "fidelity" and record["accuracy"]["before"] is None
    assert 0 <= record["accuracy"]["fidelity"] <= 100 and record["accuracy"]["classes"] == 8
    assert any("output fidelity" in message for message in record["messages"])
    assert record["accuracy"]["dataset"].startswith("mydata:loaders (64 train / 48 held out")
    assert "remove_lrn" in [m["kind"] for m in record["merges"]]  # learned from the user's batches
    assert (tmp_path / "out" / "slim.pte").stat().st_size > 0


@pytest.mark.parametrize("data, message", [("nosuch.py:loaders", "no such file"), ("mydata:missing", "no function"),
                                           ("mydata:wrong", "must return (train, held_out)"),
                                           ("mydata", "expected digits, file.py:NAME")])
def test_bad_data_is_one_line_and_exit_2(capsys, tmp_path, monkeypatch, data, message):
    (tmp_path / "mydata.py").write_text(USER_DATA)
    monkeypatch.chdir(tmp_path)
    profile = _profile_measured_elsewhere(monkeypatch, tmp_path)
    assert cli.main(["slim", "zoo:googlenet-small", "--profile", profile, "--data", data, "-o", "out"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()


def _noisy(times: dict[str, float], seed: int, spread: float = 0.25) -> dict[str, float]:
    generator = torch.Generator().manual_seed(seed)
    return {layer: time * (1 + spread * (2 * torch.rand(1, generator=generator).item() - 1))
            for layer, time in times.items()}


def test_the_steps_weigh_a_layer_as_its_kind_runs_so_noise_does_not_reorder_the_offers():
    from rebirth.models.zoo import build
    from rebirth.slimmer.cost import layer_macs
    from rebirth.slimmer.passes import ReduceChannels
    from rebirth.slimmer.plan import steady_times

    model, inputs = build("googlenet-small", 0)
    gm = trace(model)
    macs = layer_macs(gm, inputs)
    times = {layer: 0.005 + 2e-8 * work for layer, work in macs.items()}  # what the layers take, noise aside
    channels = [ReduceChannels.for_model(inputs)]

    def order(profile):
        return tuple((c.match.layers, c.match.detail) for c, _ in candidates(gm, channels, profile, inputs, macs))[:6]

    raw = {order(_noisy(times, seed)) for seed in range(6)}
    steady = {order(steady_times(gm, inputs, _noisy(times, seed))) for seed in range(6)}
    assert len(raw) > 2  # the profile's noise alone reorders the best offers ...
    assert steady == {order(times)}  # ... read steadily, it does not
    for seed in range(3):  # and each layer's time is nearer what it takes
        noisy = _noisy(times, seed)
        weighed = steady_times(gm, inputs, noisy)
        assert sum(abs(weighed[layer] / times[layer] - 1) for layer in macs) < \
            0.5 * sum(abs(noisy[layer] / times[layer] - 1) for layer in macs)


def test_a_layer_far_from_its_kind_keeps_its_measured_time():
    from rebirth.models.zoo import build
    from rebirth.slimmer.cost import layer_macs
    from rebirth.slimmer.plan import OUTLIER, steady_times

    model, inputs = build("googlenet-small", 0)
    gm = trace(model)
    times = {layer: 0.005 + 2e-8 * work for layer, work in layer_macs(gm, inputs).items()}
    times["lrn1"], times["lrn2"] = 0.2, 0.1  # one module type, told apart by their outputs' sizes
    slow = dict(times, **{"inception4a.branch2.1.0": times["inception4a.branch2.1.0"] * OUTLIER * 1.5})
    weighed = steady_times(gm, inputs, slow)
    assert weighed["inception4a.branch2.1.0"] == slow["inception4a.branch2.1.0"]  # not its delegate's, say
    assert weighed["inception4b.branch2.1.0"] == pytest.approx(times["inception4b.branch2.1.0"], rel=0.1)
    assert weighed["lrn1"] + weighed["lrn2"] == pytest.approx(0.3)  # a kind keeps its total
    assert "no_such_layer" not in weighed and steady_times(gm, inputs, {}) == {}
