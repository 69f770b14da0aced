"""Approximate slimming passes: the graph keeps its shapes, the non-tensor layers are gone, the
regenerated layers are named, and patterns that must not be rewritten are left alone."""

import pytest
import torch
from torch import nn

from rebirth.models.zoo.lrn import LocalResponseNorm
from rebirth.slimmer import MergePoolIntoConv, RemoveLRN, RemoveThinBranch, ReplacePoolBranch, run_passes
from rebirth.slimmer.graph import count_modules


class Stem(nn.Module):
    def __init__(self, pool=None, extra_user=False):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 7, stride=2, padding=3)
        self.relu = nn.ReLU()
        self.pool = pool or nn.MaxPool2d(3, 2, ceil_mode=True)
        self.lrn = LocalResponseNorm(5)
        self.head = nn.Conv2d(8, 4, 1)
        self.extra_user = extra_user

    def forward(self, x):
        y = self.relu(self.conv(x))
        z = self.head(self.lrn(self.pool(y)))
        return z + y.mean() if self.extra_user else z


@pytest.mark.parametrize("size", [64, 65, 224])
def test_a_pool_folds_into_the_convs_stride_and_the_shape_is_kept(size):
    model = Stem().eval()
    x = torch.randn(1, 3, size, size)
    gm, applied = run_passes(model, [MergePoolIntoConv((x,))])
    assert gm(x).shape == model(x).shape
    assert count_modules(gm, nn.MaxPool2d) == 0 and gm.get_submodule("conv").stride == (4, 4)
    assert [(m.kind, m.layers, m.exact, m.regenerated) for m in applied] == \
        [("merge_pool_into_conv", ("conv", "relu", "pool"), False, ("conv",))]
    assert model.conv.stride == (2, 2)  # the caller's model is not changed


def test_a_pool_whose_input_is_read_elsewhere_stays():
    x = torch.randn(1, 3, 64, 64)
    gm, applied = run_passes(Stem(extra_user=True).eval(), [MergePoolIntoConv((x,))])
    assert applied == [] and count_modules(gm, nn.MaxPool2d) == 1


def test_a_stride_one_pool_is_not_a_streamline_candidate():
    x = torch.randn(1, 3, 32, 32)
    _, applied = run_passes(Stem(pool=nn.MaxPool2d(3, 1, 1)).eval(), [MergePoolIntoConv((x,))])
    assert applied == []


def test_lrn_is_removed_and_the_next_conv_is_regenerated():
    model = Stem().eval()
    x = torch.randn(1, 3, 64, 64)
    gm, applied = run_passes(model, [RemoveLRN()])
    assert count_modules(gm, LocalResponseNorm) == 0 and gm(x).shape == model(x).shape
    assert [(m.layers, m.regenerated) for m in applied] == [(("lrn",), ("head",))]


class PoolBranch(nn.Module):
    def __init__(self, stride=1):
        super().__init__()
        self.pool = nn.MaxPool2d(3, stride, 1)
        self.proj = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return torch.relu(self.proj(self.pool(x)))


def test_the_pooling_branch_becomes_one_conv_that_starts_as_the_1x1():
    model = PoolBranch().eval()
    x = torch.randn(2, 8, 9, 9)
    gm, applied = run_passes(model, [ReplacePoolBranch()])
    conv = gm.get_submodule("proj")
    assert conv.kernel_size == (3, 3) and count_modules(gm, nn.MaxPool2d) == 0
    assert [m.regenerated for m in applied] == [("proj",)]
    # Without the pool, the centre tap alone reproduces the 1x1 conv on the raw input.
    torch.testing.assert_close(gm(x), torch.relu(model.proj(x)), atol=1e-5, rtol=1e-5)


def test_a_strided_pool_branch_is_left_alone():
    gm, applied = run_passes(PoolBranch(stride=2).eval(), [ReplacePoolBranch()])
    assert applied == [] and count_modules(gm, nn.MaxPool2d) == 1


def test_all_passes_on_googlenet_small_keep_its_output_shape():
    from rebirth.models.zoo import build
    from rebirth.slimmer import EXACT_PASSES

    model, (x,) = build("googlenet-small")
    model = model.eval()
    passes = [cls() for cls in EXACT_PASSES] + [RemoveLRN(), MergePoolIntoConv((x,)), ReplacePoolBranch()]
    gm, applied = run_passes(model, passes)
    assert gm(x).shape == model(x).shape
    kinds = [m.kind for m in applied]
    assert kinds.count("remove_lrn") == 2 and kinds.count("replace_pool_branch") == 9
    # conv1 takes pool1's stride; with lrn2 gone, conv2 takes pool2's.
    assert [m.layers[0] for m in applied if m.kind == "merge_pool_into_conv"] == ["conv1.0", "conv2.0"]
    assert count_modules(gm, LocalResponseNorm) == 0


def test_the_digits_data_set_is_split_the_same_way_every_time():
    from rebirth.slimmer.data import digits

    first, second = digits(32, batch_size=16, seed=1), digits(32, batch_size=16, seed=2)
    held = [torch.cat([y for _, y in loaders.held_out]) for loaders in (first, second)]
    assert torch.equal(held[0], held[1]) and len(held[0]) == 899
    assert len(first.train.dataset) == 898 and first.classes == 10 and "digits" in first.name
    images, labels = next(iter(first.train))
    assert images.shape == (16, 3, 32, 32) and labels.shape == (16,)
    assert set(torch.cat([y for _, y in first.train]).tolist()) == set(range(10))


class Branches(nn.Module):
    """Three branches on one input concatenated: wide 1x1, medium 3x3 (conv-BN-ReLU), thin pool + 1x1."""

    def __init__(self, thin=4, reuse_thin=False, pool_only=False):
        super().__init__()
        self.wide = nn.Sequential(nn.Conv2d(8, 16, 1), nn.ReLU())
        self.medium = nn.Sequential(nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU())
        self.thin = nn.Sequential(nn.MaxPool2d(3, 1, 1), *(() if pool_only else (nn.Conv2d(8, thin, 1), nn.ReLU())))
        self.reuse_thin = reuse_thin

    def forward(self, x):
        thin = self.thin(x)
        out = torch.cat([self.wide(x), self.medium(x), thin], 1)
        return out + thin.mean() if self.reuse_thin else out


def _with_statistics(model):
    bn = model.medium[1]
    bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.data.uniform_(0.5, 2)
    return model.eval()


def test_a_thin_branch_is_removed_and_its_width_given_to_its_neighbour():
    from rebirth.slimmer.finetune import fit_block
    from rebirth.slimmer.graph import trace

    model = _with_statistics(Branches())
    x = torch.randn(4, 8, 10, 10)
    gm, applied = run_passes(model, [RemoveThinBranch((x,))])
    assert [(m.removed, m.regenerated) for m in applied] == \
        [(("thin.0", "thin.1", "thin.2"), ("medium.0", "medium.1"))]
    assert count_modules(gm, nn.MaxPool2d) == 0 and gm.get_submodule("medium.0").out_channels == 16
    before, after = model(x), gm(x)
    assert after.shape == before.shape
    # The kept branches' channels are untouched, in place; the thin branch's channels are new.
    torch.testing.assert_close(after[:, :28], before[:, :28], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(after[:, 28:], before[:, 28:], atol=1e-2)
    # Fine-tuning the grown layers against both original branches brings the new channels closer.
    error = (after[:, 28:] - before[:, 28:]).square().mean()
    batches = [torch.randn(8, 8, 10, 10) for _ in range(4)]
    fit_block(gm, trace(model), applied[0].anchors, applied[0].regenerated, batches, steps=150)
    with torch.no_grad():
        assert (gm(x)[:, 28:] - before[:, 28:]).square().mean() < 0.8 * error
    assert model.medium[0].out_channels == 12  # the caller's model is not changed


def test_the_first_branch_gives_its_width_to_the_second_in_front():
    model = _with_statistics(Branches())
    model.wide, model.thin = model.thin, model.wide  # the thin branch first: [thin 4, medium 12, wide 16]
    x = torch.randn(2, 8, 6, 6)
    gm, applied = run_passes(model, [RemoveThinBranch((x,))])
    assert [m.removed for m in applied] == [("wide.0", "wide.1", "wide.2")]
    torch.testing.assert_close(gm(x)[:, 4:], model(x)[:, 4:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", [dict(thin=12), dict(pool_only=True), dict(reuse_thin=True)],
                         ids=["not thin", "no convolution to learn", "branch read elsewhere"])
def test_branches_that_are_not_thin_or_not_separable_stay(variant):
    model = _with_statistics(Branches(**variant))
    x = torch.randn(1, 8, 8, 8)
    gm, applied = run_passes(model, [RemoveThinBranch((x,))])
    assert applied == [] and count_modules(gm, nn.MaxPool2d) == 1


def test_teacher_activations_beyond_the_cache_limit_are_computed_again_with_the_same_result(monkeypatch):
    """Layer-wise fitting keeps the teacher's activations only up to ``CACHE_BYTES``: with no room at all,
    every step computes them again, and the fit comes out the same as with all of them kept."""
    import copy

    from rebirth.slimmer import finetune

    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                  torch.nn.Conv2d(8, 8, 3, padding=1)).eval()
    batches = [torch.randn(4, 3, 12, 12) for _ in range(3)]
    results = []
    for limit in (finetune.CACHE_BYTES, 0):
        monkeypatch.setattr(finetune, "CACHE_BYTES", limit)
        student = copy.deepcopy(teacher)
        torch.nn.init.zeros_(student[2].weight)
        loss = finetune.fit_block(student, teacher, (("2", "2"), ("0", ("0",))), ("2",), batches, steps=7)
        results.append((loss, student[2].weight.detach().clone()))
    (cached_loss, cached), (streamed_loss, streamed) = results
    assert cached_loss == pytest.approx(streamed_loss) and torch.allclose(cached, streamed)
    assert not torch.equal(cached, torch.zeros_like(cached))  # it learned something


def test_block_fit_computes_no_gradient_for_what_does_not_learn_and_gives_it_back():
    """Only the regenerated layer learns: the layers before it get no gradient (the backward pass ends at the
    block), a parameter frozen by the caller stays frozen, and every other one needs gradients again after."""
    import copy

    from rebirth.slimmer import finetune

    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                  torch.nn.Conv2d(8, 8, 3, padding=1)).eval()
    student = copy.deepcopy(teacher)
    torch.nn.init.zeros_(student[2].weight)
    student[0].bias.requires_grad_(False)
    before = student[0].weight.detach().clone()
    finetune.fit_block(student, teacher, (("2", "2"),), ("2",), [torch.randn(4, 3, 12, 12) for _ in range(3)],
                       steps=5)
    assert student[0].weight.grad is None and student[0].bias.grad is None
    assert torch.equal(student[0].weight, before)
    assert student[2].weight.grad is not None and not torch.equal(student[2].weight,
                                                                  torch.zeros_like(student[2].weight))
    assert [p.requires_grad for p in student.parameters()] == [True, False, True, True]


@pytest.mark.parametrize("low", [True, False])
def test_fine_tuning_computes_in_bfloat16_only_where_asked_and_keeps_float32_weights(monkeypatch, low):
    """``LOW_PRECISION`` (native bfloat16 kernels): the forward passes of block and end-to-end fits compute in
    bfloat16; the weights, their updates and the losses stay float32; without it, all is float32."""
    import copy

    from rebirth.slimmer import finetune

    monkeypatch.setattr(finetune, "LOW_PRECISION", low)
    seen: list[torch.dtype] = []
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                  torch.nn.Linear(8 * 6 * 6, 4)).eval()
    student = copy.deepcopy(teacher)
    student[3].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    batches = [torch.randn(4, 3, 6, 6) for _ in range(3)]
    finetune.fit_block(student, teacher, (("3", "3"),), ("3",), batches, steps=2)
    labelled = [(images, torch.arange(4)) for images in batches]
    finetune.fit_end_to_end(student, finetune.TeacherLogits(teacher, labelled), 2)
    assert seen == [torch.bfloat16 if low else torch.float32] * 4
    assert all(p.dtype == torch.float32 for p in student.parameters())
