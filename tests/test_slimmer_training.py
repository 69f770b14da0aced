"""The zoo's paper networks learn the digits: the accuracy the slimmer's budget is measured against."""

import pytest
import torch

from profiler.zoo import build
from slimmer.data import digits
from slimmer.train import evaluate, train


@pytest.mark.slow
def test_googlenet_small_learns_digits_to_90_percent_deterministically():
    torch.manual_seed(0)
    model, (x,) = build("googlenet-small")
    loaders = digits(x.shape[-1], seed=0)
    before = evaluate(model, loaders.held_out)
    seen = []
    after = train(model, loaders.train, loaders.held_out, epochs=6, seed=0,
                  on_epoch=lambda done, total, top1: seen.append((done, total)))
    assert before.top1 < 30 and after.top1 >= 90, (before, after)
    assert after.top5 >= after.top1 and after.samples == 450 and seen[-1] == (6, 6)
    assert evaluate(model, loaders.held_out) == after  # evaluation is deterministic
