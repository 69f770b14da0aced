"""Low-rank decomposition as a slimming step: exact at full rank and at a weight's own rank, offered only
where it cuts the work and the profile says the time follows, learned back within the accuracy budget."""

import pytest
import torch
from torch import nn

from rebirth.slimmer import run_passes
from rebirth.slimmer.graph import trace
from rebirth.slimmer.passes import DecomposeLowRank, LayerCosts
from rebirth.slimmer.passes.lowrank import decompose
from rebirth.slimmer.plan import candidates, make_passes
from tests.digitsnet import times_by_work

LOW_RANK_ONLY = ("reduce_channels", "int8")
"""What the tests of the decomposition skip: the other compression and int8."""


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("layer, shape", [
    (nn.Conv2d(24, 40, 3, stride=2, padding=1), (2, 24, 17, 17)),
    (nn.Conv2d(16, 32, 5, padding=2, dilation=1, padding_mode="reflect"), (1, 16, 12, 12)),
    (nn.Conv2d(16, 24, (3, 1), padding=(1, 0), dilation=(2, 1), bias=False), (1, 16, 12, 12)),
    (nn.Conv2d(32, 48, 1, stride=2, padding=1), (1, 32, 9, 9)),
    (nn.Linear(40, 24), (3, 40)),
])
def test_at_full_rank_the_chain_computes_the_layer(layer, shape):
    torch.manual_seed(0)
    x = torch.randn(shape)
    if isinstance(layer, nn.Linear) or layer.kernel_size == (1, 1):
        full = (min(layer.weight.shape[:2]),)
    else:
        full = (layer.out_channels, layer.in_channels)
    chain = decompose(layer, full)
    assert len(chain) == (2 if len(full) == 1 else 3)
    with torch.no_grad():
        assert _relative_error(chain(x), layer(x)) < 1e-5


def test_a_weight_of_low_rank_is_decomposed_exactly_at_that_rank():
    torch.manual_seed(0)
    conv = nn.Conv2d(32, 48, 3, padding=1)
    with torch.no_grad():  # a Tucker-2 weight: 48x32 channels through an 8x16 core
        core = torch.randn(8, 16, 3, 3)
        conv.weight.copy_(torch.einsum("rshw,or,is->oihw", core, torch.randn(48, 8), torch.randn(32, 16)))
    x = torch.randn(1, 32, 10, 10)
    with torch.no_grad():
        assert _relative_error(decompose(conv, (8, 16))(x), conv(x)) < 1e-5
        assert _relative_error(decompose(conv, (8, 8))(x), conv(x)) > 0.05  # below its rank it is an approximation


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)  # 3 inputs: no rank below them is worth it
        self.wide = nn.Conv2d(16, 64, 3, padding=1)
        self.depthwise = nn.Conv2d(64, 64, 3, padding=1, groups=64)
        self.pointwise = nn.Conv2d(64, 64, 1)
        self.up = nn.ConvTranspose2d(64, 16, 2, stride=2)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.up(self.pointwise(self.depthwise(torch.relu(self.wide(torch.relu(self.stem(x)))))))
        return self.head(x.mean((2, 3)))


X = (torch.randn(1, 3, 16, 16),)


def test_offers_are_made_for_plain_layers_at_ranks_that_cut_the_work():
    gm = trace(Net())
    offers = DecomposeLowRank(X).matches(gm)
    layers = {match.layers[0] for match in offers}
    assert layers == {"wide", "pointwise"}  # not the depthwise, the transposed or the 3-input stem; head too small
    for match in offers:
        assert all(rank % 8 == 0 for rank in match.ranks) and "% of the MACs" in match.detail
        assert not match.exact and match.regenerated == match.layers
    assert {len(m.ranks) for m in offers if m.layers == ("wide",)} == {2}  # Tucker-2 for a 3x3
    assert {len(m.ranks) for m in offers if m.layers == ("pointwise",)} == {1}  # SVD for a 1x1


def test_the_decomposed_model_keeps_its_shapes_and_counts_the_chains_work():
    from rebirth.slimmer.cost import layer_macs

    model = Net().eval()
    gm, applied = run_passes(model, [DecomposeLowRank(X)])
    assert {m.layers[0] for m in applied} == {"wide", "pointwise"}
    assert gm(*X).shape == model(*X).shape and isinstance(gm.get_submodule("wide"), nn.Sequential)
    before, after = layer_macs(trace(model), X), layer_macs(gm, X)
    assert after["wide"] <= 0.6 * before["wide"] and after["pointwise"] <= 0.6 * before["pointwise"]
    assert after["stem"] == before["stem"]


def _profile(per_layer_ms: float, per_mac_ms: float) -> dict[str, float]:
    from rebirth.slimmer.cost import layer_macs

    macs = layer_macs(trace(Net()), X)
    return {layer: per_layer_ms + per_mac_ms * work for layer, work in macs.items()}


def test_the_profile_decides_whether_three_layers_beat_one():
    """Where each layer's fixed cost dominates (a busy dispatcher, a tiny model) a decomposition is not worth
    it; where the time follows the work it is, and the cheapest chain is offered first."""
    gm = trace(Net())
    passes = make_passes(X) + [DecomposeLowRank(X)]

    def worthwhile(times):
        return [c for c, _ in candidates(gm, passes, times, X) if c.match.kind == "low_rank" and c.worthwhile]

    assert worthwhile(_profile(1.0, 1e-9)) == []
    by_work = worthwhile(_profile(0.0, 1e-6))
    assert by_work and by_work[0].gain_ms >= by_work[-1].gain_ms


def test_a_wide_layer_is_offered_at_a_quarter_and_at_half_of_its_work():
    from rebirth.slimmer.passes.lowrank import chain_macs, full_macs, offers

    conv = nn.Conv2d(64, 128, 3, padding=1)
    in_shape, out_shape = (1, 64, 8, 8), (1, 128, 8, 8)
    work = full_macs(conv, out_shape)
    found = offers(conv, in_shape, out_shape, work)
    assert len(found) == 2 and found[0] < found[1]
    shares = [chain_macs(conv, ranks, in_shape, out_shape) / work for ranks in found]
    assert 0.2 < shares[0] < 0.35 and 0.45 < shares[1] <= 0.6  # the targets, rounded up to 8-channel tiles


def test_the_fit_separates_a_layers_fixed_cost_from_its_work():
    costs = LayerCosts({"a": 1.0 + 2.0, "b": 1.0 + 4.0, "c": 1.0 + 8.0}, {}, {"a": 2, "b": 4, "c": 8})
    assert costs.fit == pytest.approx((1.0, 1.0))
    assert costs.predict(16) == pytest.approx(17.0)
    falling = LayerCosts({"a": 3.0, "b": 2.0, "c": 1.0}, {}, {"a": 2, "b": 4, "c": 8})  # noise: no line fits
    assert falling.fit == pytest.approx((0.0, 6.0 / 14))


def test_decomposition_is_offered_by_default_unless_skipped_and_after_the_merges():
    from rebirth.slimmer import SlimOptions, plan_offers

    def kinds(**options):
        return [offer.kind for offer in plan_offers(Net(), X, _profile(0.0, 1e-6), SlimOptions(**options))]

    assert "low_rank" not in kinds(skip=("low_rank",))
    assert "low_rank" not in kinds(exact_only=True)
    asked = kinds(skip=("reduce_channels",))
    assert "low_rank" in asked and all(kind == "low_rank" for kind in asked[asked.index("low_rank"):])


def test_slimming_with_decompose_cuts_the_work_within_the_budget_and_records_each_step(trained_digits_net):
    from rebirth.slimmer.slim import SlimOptions, slim

    model, loaders, _ = trained_digits_net
    inputs = (torch.randn(1, 3, 16, 16),)
    times = times_by_work(model, inputs)  # time follows work
    said: list[str] = []
    result = slim(model, inputs, times, loaders, trained=True, options=SlimOptions(skip=LOW_RANK_ONLY, min_gain=0.05),
                  say=said.append)
    steps = [m for m in result.merges if m.kind == "low_rank"]
    assert steps, said
    assert result.accuracy_before and result.accuracy_after
    assert result.accuracy_before.top1 - result.accuracy_after.top1 <= 0.5
    assert result.macs_after < 0.8 * result.macs_before
    for step in steps:
        assert step.macs_saved and step.macs_saved > 0 and step.params_saved and step.params_saved > 0
        assert step.quality_before is not None and step.quality_after is not None and "ranks" in step.detail
        assert step.points_lost == pytest.approx(step.quality_before - step.quality_after)
    assert sum(m.macs_saved or 0 for m in result.merges) == result.macs_before - result.macs_after
    assert len(steps) == 1 and len(steps[0].layers) >= 2  # all layers decomposed in one step, as the paper did
    assert any(line.startswith(f"decomposed {len(steps[0].layers)} layers to ") for line in said)


def test_a_decomposition_over_the_budget_is_skipped_with_its_ranks(trained_digits_net):
    from rebirth.slimmer.slim import SlimOptions, slim

    model, loaders, _ = trained_digits_net
    inputs = (torch.randn(1, 3, 16, 16),)
    times = times_by_work(model, inputs)
    result = slim(model, inputs, times, loaders, trained=True,
                  options=SlimOptions(skip=LOW_RANK_ONLY, min_gain=0.05, block_steps=0, end_to_end_steps=0,
                                      max_accuracy_drop=-1.0))  # nothing can be within a budget below zero
    skipped = [s for s in result.skipped if s.kind == "low_rank"]
    assert not [m for m in result.merges if m.kind == "low_rank"] and result.macs_after == result.macs_before
    assert skipped and {s.code for s in skipped} == {"over_budget"}
    assert all("ranks" in s.reason and "over the -1.0 budget" in s.reason for s in skipped)


def test_full_size_googlenet_weights_are_named_by_their_whole_recipe(tmp_path, monkeypatch):
    from rebirth.slimmer.weights import SMALLER_FIRST, trainable, weights_path

    monkeypatch.setenv("REBIRTH_CACHE", str(tmp_path))
    assert trainable("googlenet") and SMALLER_FIRST["googlenet"][0] < 224
    assert "-112px6-e2-" in weights_path("googlenet").name
    assert "px" not in weights_path("googlenet-small").name
    assert weights_path("googlenet").parent.is_relative_to(tmp_path)


def _profile_by_work(monkeypatch, tmp_path, model, inputs):
    """A profile (measured elsewhere) in which each layer's time follows its work."""
    from types import SimpleNamespace

    from rebirth.contract.profile import Profile

    ops = [SimpleNamespace(layer=layer, p50_ms=time) for layer, time in times_by_work(model, inputs).items()]
    monkeypatch.setattr(Profile, "load", classmethod(lambda cls, path: SimpleNamespace(ops=ops)))
    (tmp_path / "p.json").write_text("{}")
    return tmp_path / "p.json"


def test_the_plan_lists_decompositions_with_their_ranks_only_when_asked(trained_digits_net, tmp_path, monkeypatch,
                                                                       capsys):
    from rebirth import cli

    model, _, source = trained_digits_net
    profile = _profile_by_work(monkeypatch, tmp_path, model, (torch.randn(1, 3, 16, 16),))
    monkeypatch.setenv("COLUMNS", "250")  # one row per line
    assert cli.main(["slim", f"{source}:make", "--profile", str(profile), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "low_rank" in out and "Tucker-2 ranks" in out
    assert cli.main(["slim", f"{source}:make", "--profile", str(profile), "--plan", "--skip", "low_rank"]) == 0
    assert "low_rank" not in capsys.readouterr().out


@pytest.mark.slow
def test_rebirth_slim_decompose_writes_programs_the_runtime_runs(trained_digits_net, tmp_path, monkeypatch, capsys):
    """The decomposed chain lowers to XNNPACK and runs; slim-merged.pte is the merges alone."""
    from rebirth import cli
    from rebirth.contract.slim import SlimRecord
    from rebirth.devices.runner import load_runtime

    model, loaders, source = trained_digits_net
    profile = _profile_by_work(monkeypatch, tmp_path, model, (torch.randn(1, 3, 16, 16),))
    out = tmp_path / "out"
    monkeypatch.setenv("COLUMNS", "250")
    code = cli.main(["slim", f"{source}:make", "--profile", str(profile), "--skip", ",".join(LOW_RANK_ONLY),
                     "--min-gain", "5", "--data", f"{source}:loaders", "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    record = SlimRecord.load(out / "slim.json")
    step = next(m for m in record.merges if m.kind == "low_rank")
    assert "slim-merged.pte (the merges alone)" in printed and "points lost" in printed
    assert step.macs_saved and step.macs_saved > 0 and record.macs.after < record.macs.before
    images, labels = next(iter(loaders.held_out))
    for name in ("slim.pte", "slim-merged.pte"):
        program = load_runtime()._load_for_executorch(str(out / name), enable_etdump=False, debug_buffer_size=0)
        hits = sum(int(program.forward((image[None],))[0].argmax().item() == label.item())
                   for image, label in zip(images[:100], labels[:100]))
        assert hits >= 85, (name, hits)  # what runs still reads the digits


def test_a_layer_joins_the_decomposition_at_three_quarters_of_the_min_gain_if_the_layers_together_reach_it(
        trained_digits_net):
    """One fine-tuning step for all layers: a layer needs three quarters of --min-gain (of the work, here the time
    too), the step all of it."""
    from rebirth.slimmer import SlimOptions, slim
    from rebirth.slimmer.steps import COMPRESS_LAYER_WORK

    model, loaders, _ = trained_digits_net
    inputs = (torch.randn(1, 3, 16, 16),)
    times = times_by_work(model, inputs)
    best = _best_low_rank_gains(model, inputs, times)
    total = sum(times.values())
    gains = sorted(best.values())
    assert len(gains) >= 2
    # a min_gain above the smallest layer's gain but below 4/3 of it: alone that layer would not be worth it
    min_gain = 1.2 * gains[0] / total
    said: list[str] = []
    result = slim(model, inputs, times, loaders, trained=True, say=said.append,
                  options=SlimOptions(skip=LOW_RANK_ONLY, min_gain=min_gain, max_accuracy_drop=100.0))
    steps = [m for m in result.merges if m.kind == "low_rank"]
    joined = {layer for layer, gain in best.items() if gain >= COMPRESS_LAYER_WORK * min_gain * total}
    assert joined == set(best) and gains[0] < min_gain * total  # the smallest joins under the min_gain
    assert len(steps) == 1 and set(steps[0].layers) == joined, said
    # a min_gain the layers together cannot reach: nothing is decomposed, and it says why
    said.clear()
    result = slim(model, inputs, times, loaders, trained=True, say=said.append,
                  options=SlimOptions(skip=LOW_RANK_ONLY, min_gain=1.01 * sum(gains) / total))
    assert not [m for m in result.merges if m.kind == "low_rank"]
    assert any("no layers are worth decomposing" in line for line in said), said


def test_every_decision_records_its_evidence_and_the_data_say_what_they_resolve(trained_digits_net):
    from rebirth.slimmer.slim import SlimOptions, slim

    model, loaders, _ = trained_digits_net
    inputs = (torch.randn(1, 3, 16, 16),)
    said = []
    result = slim(model, inputs, times_by_work(model, inputs), loaders, trained=True, say=said.append,
                  options=SlimOptions(skip=LOW_RANK_ONLY, min_gain=0.05, max_accuracy_drop=1.0))
    samples = sum(len(labels) for _, labels in loaders.held_out)
    assert any(line.startswith(f"{samples} held-out samples at 95% confidence: one is ") for line in said)  # first
    learned = [merge for merge in result.merges if not merge.exact]
    assert learned
    for merge in learned:
        evidence = merge.evidence
        assert evidence is not None and evidence.samples == samples and evidence.budget == 1.0
        assert evidence.within and evidence.budget_left == pytest.approx(1.0 - evidence.bound)
        assert evidence.low <= evidence.lost <= evidence.bound <= evidence.high and evidence.changed is not None
        assert evidence.confidence == 0.95 and evidence.bound <= 1.0  # kept on the bound, not the estimate
        assert abs(evidence.lost) <= 100 * evidence.changed / samples + 1e-9  # moved by at most what changed
        assert evidence.quality == merge.quality_after


def test_the_layers_a_compression_takes_do_not_move_with_the_profile(trained_digits_net):
    """Which layers join is decided on their work, so profiles of the same model that differ in the other layers'
    time (an LRN, a pool: what moved full-size GoogLeNet's step between 7 and 9 layers) make the same step, even
    with a layer's saving a hair above the cut."""
    from rebirth.slimmer import SlimOptions, slim
    from rebirth.slimmer.steps import COMPRESS_LAYER_WORK

    model, loaders, _ = trained_digits_net
    inputs = (torch.randn(1, 3, 16, 16),)
    work = times_by_work(model, inputs)  # 1e-5 ms per MAC: a time gain here is 1e-5 ms per MAC saved
    best = _best_low_rank_gains(model, inputs, work)
    gains = sorted(best.values())
    assert len(gains) >= 2
    min_gain = 0.99 * gains[0] / (COMPRESS_LAYER_WORK * sum(work.values()))  # the smallest saving just clears the cut
    steps = []
    for pool_share in (0.0, 0.5, 1.0):  # the pool's time as a share of the conv and linear layers'
        times = {**work, "pool": pool_share * sum(work.values())}
        said: list[str] = []
        result = slim(model, inputs, times, loaders, trained=True, say=said.append,
                      options=SlimOptions(skip=LOW_RANK_ONLY, min_gain=min_gain, max_accuracy_drop=100.0,
                                          end_to_end_steps=10, block_steps=10))
        steps.append([(m.layers, m.detail) for m in result.merges if m.kind == "low_rank"])
    assert len(steps[0]) == 1 and set(steps[0][0][0]) == set(best), steps[0]  # every layer, the smallest too
    assert steps[1] == steps[0] and steps[2] == steps[0]


def _best_low_rank_gains(model, inputs, times: dict[str, float]) -> dict[str, float]:
    """Each layer's best worthwhile low-rank offer's gain in ms under ``times``, by the layer it decomposes."""
    from rebirth.slimmer.cost import layer_macs

    graph = trace(model)
    best: dict[str, float] = {}
    for candidate, _ in candidates(graph, [DecomposeLowRank(inputs)], times, inputs, layer_macs(graph, inputs)):
        if candidate.worthwhile:
            best[candidate.match.layers[0]] = max(best.get(candidate.match.layers[0], 0.0), candidate.gain_ms)
    return best
