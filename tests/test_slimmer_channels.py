"""Channel reduction as a slimming step: the channels between two convolutions cut to the most salient ones,
exact where the cut channels carry nothing, never where other layers read those channels, learned back
within the accuracy budget where they do carry something."""

import pytest
import torch
from torch import nn

from rebirth.slimmer import run_passes
from rebirth.slimmer.graph import finish, trace
from rebirth.slimmer.passes import EXACT_PASSES, LayerCosts, ReduceChannels
from tests.digitsnet import times_by_work


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


class Expansion(nn.Module):
    """MobileNetV2's inverted residual without the residual: 1x1 expand, BN, ReLU6, depthwise 3x3, BN, ReLU6,
    1x1 project."""

    def __init__(self):
        super().__init__()
        self.expand = nn.Conv2d(8, 32, 1)
        self.bn1 = nn.BatchNorm2d(32)
        self.act1 = nn.ReLU6()
        self.depthwise = nn.Conv2d(32, 32, 3, padding=1, groups=32)
        self.bn2 = nn.BatchNorm2d(32)
        self.act2 = nn.ReLU6()
        self.project = nn.Conv2d(32, 16, 1)

    def forward(self, x):
        return self.project(self.act2(self.bn2(self.depthwise(self.act1(self.bn1(self.expand(x)))))))


def _randomised(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with BatchNorm statistics that are not the identity."""
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            with torch.no_grad():
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


def test_the_expansion_chain_is_offered_at_a_half_and_three_quarters_of_its_channels():
    gm = trace(_randomised(Expansion()))
    found = ReduceChannels().matches(gm)
    assert [m.ranks for m in found] == [(16,), (24,)]
    for match in found:
        assert match.layers == ("expand", "bn1", "act1", "depthwise", "bn2", "act2", "project")
        assert match.regenerated == ("expand", "bn1", "depthwise", "bn2", "project")  # what has weights
        assert match.anchors == (("project", "project"),) and not match.exact
        assert f"{match.ranks[0]} of 32 channels into project" == match.detail


def test_cutting_channels_that_carry_nothing_is_exact_and_slices_every_layer_on_the_way():
    model = _randomised(Expansion())
    dead = torch.arange(1, 32, 2)  # the project layer reads every other channel with zero weights
    with torch.no_grad():
        model.project.weight[:, dead] = 0
    gm = trace(model)
    x = torch.randn(2, 8, 10, 10)
    half = next(m for m in ReduceChannels().matches(gm) if m.ranks == (16,))
    ReduceChannels().rewrite(gm, half)
    gm = finish(gm)
    with torch.no_grad():
        assert _relative_error(gm(x), model(x)) < 1e-6
    assert gm.expand.out_channels == 16 and gm.bn1.num_features == 16 and gm.bn2.num_features == 16
    assert gm.depthwise.groups == gm.depthwise.in_channels == gm.depthwise.out_channels == 16
    assert gm.project.in_channels == 16 and gm.project.out_channels == 16
    assert torch.equal(gm.depthwise.weight, model.depthwise.weight[0::2])  # the live channels, in order


def test_the_channels_kept_are_the_salient_ones_and_the_rest_is_an_approximation():
    model = _randomised(Expansion())
    gm = trace(model)
    x = torch.randn(2, 8, 10, 10)
    half = next(m for m in ReduceChannels().matches(gm) if m.ranks == (16,))
    ReduceChannels().rewrite(gm, half)
    gm = finish(gm)
    with torch.no_grad():
        error = _relative_error(gm(x), model(x))
    assert 0.01 < error < 1.0  # half the channels of random weights: not exact, not unrelated


class Inception(nn.Module):
    """Two branches that read one input: a 1x1, and a 1x1 reducer then a 3x3; their outputs concatenated."""

    def __init__(self):
        super().__init__()
        self.branch1 = nn.Conv2d(16, 8, 1)
        self.reduce = nn.Conv2d(16, 24, 1)
        self.relu = nn.ReLU()
        self.conv3 = nn.Conv2d(24, 16, 3, padding=1)

    def forward(self, x):
        return torch.cat([self.branch1(x), self.conv3(self.relu(self.reduce(x)))], 1)


def test_a_reducer_merged_with_its_parallel_convolution_is_cut_in_its_part_of_the_split():
    """After the exact merges, GoogLeNet's reducers are parts of one wider convolution and a split: the cut
    is made in the reducer's part, and the other parts keep every channel."""
    model = Inception().eval()
    with torch.no_grad():
        model.conv3.weight[:, 8:] = 0  # the reducer's last 16 channels carry nothing
    inputs = (torch.randn(1, 16, 8, 8),)
    gm, merges = run_passes(model, [kind.for_model(inputs) for kind in EXACT_PASSES])
    assert any(m.kind == "merge_parallel" for m in merges)
    found = ReduceChannels().matches(gm)
    assert [m.detail for m in found] == ["16 of 24 channels into conv3"]  # 3/4 of 24 rounds up to all 24
    ReduceChannels().rewrite(gm, found[0])
    gm = finish(gm)
    with torch.no_grad():
        assert _relative_error(gm(*inputs), model(*inputs)) < 1e-6
    merged = gm.get_submodule(found[0].layers[0])
    assert merged.out_channels == 8 + 16 and gm.conv3.in_channels == 16
    with torch.no_grad():
        assert torch.equal(merged.weight[:8], model.branch1.weight)  # the 1x1 branch's part is untouched


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(16, 16, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)

    def forward(self, x):
        y = self.relu(self.conv1(x))
        return self.conv2(y) + y  # the residual reads conv1's channels too


class Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(8, 16, 1)
        self.grouped = nn.Conv2d(16, 16, 3, padding=1, groups=4)  # mixes channels within groups
        self.conv2 = nn.Conv2d(16, 8, 1)

    def forward(self, x):
        return self.conv2(self.grouped(self.conv1(x)))


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(8, 16, 1)
        self.conv2 = nn.Conv2d(16, 16, 1)

    def forward(self, x):
        return self.conv2(self.conv2(self.conv1(x)))  # conv2 is called twice: its weights are shared


class IntoLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 16, 3)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(self.conv(x).mean((2, 3)))


class IntoConcat(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(8, 16, 1)
        self.conv2 = nn.Conv2d(8, 16, 1)
        self.conv3 = nn.Conv2d(32, 8, 1)

    def forward(self, x):
        return self.conv3(torch.cat([self.conv1(x), torch.relu(self.conv2(x) + 1)], 1))


@pytest.mark.parametrize("model", [Residual(), Grouped(), Shared(), IntoLinear(), IntoConcat()],
                         ids=lambda model: type(model).__name__)
def test_channels_others_read_or_that_do_not_stay_apart_are_never_cut(model):
    """A residual add, a grouped convolution, shared weights, a linear head, a concat: not this pass's."""
    assert ReduceChannels().matches(trace(model.eval())) == []


class Bottleneck(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(32, 16, 1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(16, 32, 1)

    def forward(self, x):
        return self.conv3(self.relu2(self.conv2(self.relu1(self.conv1(x))))) + x


def test_chains_cut_together_reproduce_the_last_consumer_whose_outputs_stay():
    """ResNet's 3x3 both reads reduced channels and has its own cut: the step matches conv3's output."""
    gm = trace(Bottleneck().eval())
    pass_ = ReduceChannels()
    halves = [m for m in pass_.matches(gm) if m.ranks == (8,)]
    assert [(m.layers[0], m.layers[-1]) for m in halves] == [("conv1", "conv2"), ("conv2", "conv3")]
    assert pass_.group_anchors(halves) == (("conv3", "conv3"),)
    assert pass_.group_anchors(halves[:1]) == (("conv2", "conv2"),)
    for match in halves:
        pass_.rewrite(gm, match)
    gm = finish(gm)
    assert gm.conv2.in_channels == gm.conv2.out_channels == 8 and gm(torch.randn(1, 32, 6, 6)).shape == (1, 32, 6, 6)


def test_an_offer_is_worth_what_the_profiles_fit_says_the_thinner_layers_save():
    from rebirth.slimmer.cost import layer_macs

    gm = trace(_randomised(Expansion()))
    x = (torch.randn(1, 8, 16, 16),)
    macs = layer_macs(gm, x)
    found = ReduceChannels().matches(gm)

    def gains(per_layer_ms: float, per_mac_ms: float) -> list[float]:
        times = {layer: per_layer_ms + per_mac_ms * work for layer, work in macs.items()}
        costs = LayerCosts(times, macs, macs)
        return [ReduceChannels().estimate(gm, match, costs)[0] for match in found]

    by_work = gains(0.0, 1e-6)
    total = sum(1e-6 * work for work in macs.values())
    assert by_work[0] == pytest.approx(0.5 * total) and by_work[1] == pytest.approx(0.25 * total)
    fixed = gains(1.0, 1e-12)  # each layer's time is its fixed cost: fewer channels save next to nothing
    assert max(fixed) < 1e-3 < by_work[1]


def test_slimming_with_reduce_channels_cuts_the_work_within_the_budget_and_records_the_step(trained_digits_net):
    from rebirth.slimmer.slim import SlimOptions, slim

    model, loaders, _ = trained_digits_net
    inputs = (torch.randn(1, 3, 16, 16),)
    times = times_by_work(model, inputs)
    said: list[str] = []
    result = slim(model, inputs, times, loaders, trained=True,
                  options=SlimOptions(skip=("int8",), min_gain=0.05), say=said.append)
    steps = [m.kind for m in result.merges if m.kind in ("reduce_channels", "low_rank")]
    assert steps and steps[0] == "reduce_channels", said  # channels first, then (maybe) decomposition
    step = result.merges[[m.kind for m in result.merges].index("reduce_channels")]
    assert step.macs_saved and step.macs_saved > 0 and step.params_saved and step.params_saved > 0
    assert set(step.layers) >= {"conv1", "conv2", "conv3"} and "channels into" in step.detail
    assert step.quality_before is not None and step.quality_after is not None
    assert result.accuracy_before and result.accuracy_after
    assert result.accuracy_before.top1 - result.accuracy_after.top1 <= 0.5
    assert any(line.startswith("channel-reduced ") for line in said), said
    assert result.program("merged") is not None
    assert (result.program("reduced") is not None) == ("low_rank" in steps)
    assert sum(m.macs_saved or 0 for m in result.merges) == result.macs_before - result.macs_after


def test_a_channel_reduction_over_the_budget_is_skipped_and_the_model_kept(trained_digits_net):
    from rebirth.slimmer.slim import SlimOptions, slim

    model, loaders, _ = trained_digits_net
    inputs = (torch.randn(1, 3, 16, 16),)
    times = times_by_work(model, inputs)
    result = slim(model, inputs, times, loaders, trained=True,
                  options=SlimOptions(skip=("low_rank", "int8"), min_gain=0.05, block_steps=0, end_to_end_steps=0,
                                      max_accuracy_drop=-1.0))  # nothing can be within a budget below zero
    assert not [m for m in result.merges if m.kind == "reduce_channels"]
    skipped = [s for s in result.skipped if s.kind == "reduce_channels"]
    assert len(skipped) == 2 and {s.code for s in skipped} == {"over_budget"}  # both offers were tried
    assert all("channels into" in s.reason for s in skipped)  # the prose names what was tried
    assert result.macs_after == result.macs_before


@pytest.mark.slow
def test_rebirth_slim_reduce_channels_writes_programs_the_runtime_runs(trained_digits_net, tmp_path, monkeypatch,
                                                                      capsys):
    from rebirth import cli
    from rebirth.contract.slim import SlimRecord
    from rebirth.devices.runner import load_runtime
    from tests.test_slimmer_lowrank import _profile_by_work

    model, loaders, source = trained_digits_net
    profile = _profile_by_work(monkeypatch, tmp_path, model, (torch.randn(1, 3, 16, 16),))
    out = tmp_path / "out"
    monkeypatch.setenv("COLUMNS", "250")
    assert cli.main(["slim", f"{source}:make", "--profile", str(profile), "--plan"]) == 0
    assert "reduce_channels" in capsys.readouterr().out
    code = cli.main(["slim", f"{source}:make", "--profile", str(profile), "--skip", "low_rank,int8", "--min-gain", "5",
                     "--data", f"{source}:loaders", "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    record = SlimRecord.load(out / "slim.json")
    assert any(m.kind == "reduce_channels" for m in record.merges) and record.macs.after < record.macs.before
    assert "slim-merged.pte (the merges alone)" in printed
    images, labels = next(iter(loaders.held_out))
    program = load_runtime()._load_for_executorch(str(out / "slim.pte"), enable_etdump=False, debug_buffer_size=0)
    hits = sum(int(program.forward((image[None],))[0].argmax().item() == label.item())
               for image, label in zip(images[:100], labels[:100]))
    assert hits >= 85, hits  # what runs still reads the digits


def test_the_terminal_names_a_few_layers_of_a_step_over_many_and_how_many_there_are():
    from rebirth.reports.slim_view import layer_list

    layers = tuple(f"features.{index}.conv" for index in range(34))
    assert layer_list(layers[:4]) == ", ".join(layers[:4])
    shown = layer_list(layers)
    assert shown.startswith("features.0.conv, features.1.conv") and shown.endswith("(34 layers)")
    assert "features.4.conv" not in shown


class SplitWhole(nn.Module):
    """A split whose parts are also used as a list (a concat of all of them): no part is the reducer's own."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(8, 32, 1)
        self.conv2 = nn.Conv2d(16, 8, 1)

    def forward(self, x):
        parts = torch.split(self.conv1(x), [16, 16], dim=1)
        return torch.cat([self.conv2(torch.relu(parts[0])), parts[1]], 1) + torch.cat(parts, 1)[:, :24]


def test_a_split_whose_parts_are_also_read_whole_is_not_cut():
    assert ReduceChannels().matches(trace(SplitWhole().eval())) == []
