"""Exact slimming passes: outputs equal up to float rounding, fewer layers, and the caller's model
untouched; each pass also refuses the patterns it must not rewrite."""

import copy

import pytest
import torch
from torch import nn

from rebirth.slimmer import (
    FoldBatchNormIntoNext,
    FoldBatchNormIntoPrevious,
    MergeParallelConvs,
    RemoveNoOps,
    run_passes,
)
from rebirth.slimmer.graph import count_modules

TOL = dict(atol=1e-5, rtol=1e-5)


def warmed(model: nn.Module, *shape: int) -> nn.Module:
    """BatchNorm with running statistics that are not the identity, then eval mode."""
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(torch.randn(*shape) * 3 + 1)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.5, 0.5)
    return model.eval()


def check(model, passes, x):
    reference = model(x)
    state = copy.deepcopy(model.state_dict())
    gm, applied = run_passes(model, passes)
    torch.testing.assert_close(gm(x), reference, **TOL)
    for key, value in model.state_dict().items():  # the caller's model is not changed
        torch.testing.assert_close(value, state[key], atol=0, rtol=0)
    assert all(match.exact for match in applied)
    return gm, applied


class ConvBn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)
        self.bn1d = nn.BatchNorm1d(4)

    def forward(self, x):
        return self.bn1d(self.fc(self.bn(self.conv(x)).mean((2, 3))))


def test_batchnorm_folds_into_the_preceding_conv_and_linear():
    model = warmed(ConvBn(), 4, 3, 8, 8)
    gm, applied = check(model, [FoldBatchNormIntoPrevious()], torch.randn(2, 3, 8, 8))
    assert count_modules(gm, nn.modules.batchnorm._BatchNorm) == 0
    assert [(m.kind, m.layers) for m in applied] == [("fold_bn", ("conv", "bn")), ("fold_bn", ("fc", "bn1d"))]


class Branchy(nn.Module):
    """A conv whose output is also read elsewhere: folding the BN would change that other use."""

    def __init__(self, track=True):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8, track_running_stats=track)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def test_batchnorm_is_not_folded_when_the_conv_has_another_user():
    gm, applied = run_passes(warmed(Branchy(), 4, 3, 8, 8), [FoldBatchNormIntoPrevious()])
    assert applied == [] and count_modules(gm, nn.BatchNorm2d) == 1


def test_batchnorm_without_running_statistics_is_left_alone():
    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8, track_running_stats=False)

        def forward(self, x):
            return self.bn(self.conv(x))

    gm, applied = run_passes(Plain().eval(), [FoldBatchNormIntoPrevious(), FoldBatchNormIntoNext()])
    assert applied == [] and count_modules(gm, nn.BatchNorm2d) == 1


class BnConv(nn.Module):
    def __init__(self, padding=0, groups=1):
        super().__init__()
        self.bn = nn.BatchNorm2d(8)
        self.conv = nn.Conv2d(8, 6, 3, padding=padding, groups=groups if groups == 1 else 2, bias=False)

    def forward(self, x):
        return self.conv(self.bn(x))


def test_batchnorm_folds_into_the_following_unpadded_conv():
    model = warmed(BnConv(), 4, 8, 9, 9)
    gm, applied = check(model, [FoldBatchNormIntoNext()], torch.randn(2, 8, 9, 9))
    assert [m.kind for m in applied] == ["fold_bn_forward"] and count_modules(gm, nn.BatchNorm2d) == 0


@pytest.mark.parametrize("padding, groups", [(1, 1), (0, 2)])
def test_batchnorm_is_not_folded_forward_where_it_would_not_be_exact(padding, groups):
    gm, applied = run_passes(warmed(BnConv(padding, groups), 4, 8, 9, 9), [FoldBatchNormIntoNext()])
    assert applied == [] and count_modules(gm, nn.BatchNorm2d) == 1


class Inceptionish(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(8, 4, 1), nn.Conv2d(8, 6, 1), nn.Conv2d(8, 2, 1)
        self.d = nn.Conv2d(8, 3, 3, padding=1)   # another kernel size: not merged
        self.drop, self.same = nn.Dropout(0.5), nn.Identity()

    def forward(self, x):
        x = self.same(x)
        return self.drop(torch.cat([torch.relu(self.a(x)), self.b(x), self.c(x) * 2, self.d(x)], 1))


def test_parallel_convs_on_one_input_become_one_conv_and_a_split():
    model = Inceptionish().eval()
    gm, applied = check(model, [RemoveNoOps(), MergeParallelConvs()], torch.randn(2, 8, 5, 5))
    assert count_modules(gm, nn.Conv2d) == 2 and count_modules(gm, (nn.Dropout, nn.Identity)) == 0
    merges = [m for m in applied if m.kind == "merge_parallel"]
    assert [m.layers for m in merges] == [("a", "b", "c")]
    assert gm.get_submodule("merged").out_channels == 12


def test_dropout_in_training_mode_is_not_a_no_op():
    from rebirth.slimmer.graph import trace

    gm = trace(Inceptionish())
    gm.drop.train()
    assert [m.layers for m in RemoveNoOps().matches(gm)] == [("same",)]


def test_exact_passes_keep_a_zoo_network_equal():
    from rebirth.models.zoo import build
    from rebirth.slimmer import EXACT_PASSES

    model, (x,) = build("googlenet-small")
    model = model.eval()
    gm, applied = check(model, [cls() for cls in EXACT_PASSES], x)
    merges = [m for m in applied if m.kind == "merge_parallel"]
    assert len(merges) == 9 and all(len(m.layers) == 3 for m in merges)  # the three 1x1s of each Inception
    convs_before = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    assert count_modules(gm, nn.Conv2d) == convs_before - 2 * 9
    assert [m.layers for m in applied if m.kind == "remove_no_op"] == [("dropout",)]


@pytest.mark.parametrize("name", ["firenet", "resnet50-small", "mobilenet_v2-small", "googlenet-bn-small"])
def test_exact_passes_keep_networks_they_were_not_written_for_within_1e_4(name):
    """Networks with BatchNorm everywhere (statistics warmed so folding changes weights), residual adds,
    depthwise convolutions and fire modules: every exact pass together, outputs within 1e-4."""
    from rebirth.models.zoo import build
    from rebirth.slimmer import EXACT_PASSES
    from tests.foreign import FireNet

    model, (x,) = (FireNet(), (torch.randn(1, 3, 64, 64),)) if name == "firenet" else build(name)
    model = warmed(model, 4, *x.shape[1:])
    reference = model(x)
    gm, applied = run_passes(model, [cls() for cls in EXACT_PASSES])
    torch.testing.assert_close(gm(x), reference, atol=1e-4, rtol=1e-4)
    folded = sum(m.kind.startswith("fold_bn") for m in applied)
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert folded > 0 and count_modules(gm, nn.BatchNorm2d) < norms
