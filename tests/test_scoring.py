"""One top-1 everywhere: a model scored in PyTorch, its outputs scored as the runtime gives them, and its
agreement with another model break ties alike, so accuracy and agreement never contradict each other."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from rebirth.slimmer.judge import agreement
from rebirth.slimmer.train import evaluate, predictions, score


class Fixed(nn.Module):
    """Returns given logits, one row per sample, in order (as a ReLU before a pooled head can: all zeros)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits
        self.seen = 0

    def forward(self, images):
        rows = self.logits[self.seen:self.seen + len(images)]
        self.seen += len(images)
        return rows


def test_all_zero_logits_score_the_same_in_pytorch_in_the_runtime_and_in_agreement():
    logits = torch.zeros(8, 10)
    logits[3, 7] = 1.0
    logits[5, [2, 4]] = 1.0  # a tie between two classes: the first wins
    labels = torch.tensor([0, 0, 5, 7, 0, 4, 2, 0])
    loader = DataLoader(TensorDataset(torch.zeros(8, 1), labels), batch_size=3)
    in_pytorch = evaluate(Fixed(logits), loader)
    as_the_runtime_gives_them = score(logits.clone(), labels)
    assert in_pytorch == as_the_runtime_gives_them
    assert in_pytorch.top1 == 100 * 5 / 8 and predictions(logits)[5] == 2
    assert in_pytorch.top5 is not None and in_pytorch.top5 >= in_pytorch.top1
    other = logits.clone()
    other[0, 9] = 1.0  # one prediction changed
    changed = 100 - agreement(other, logits)
    assert changed == 100 / 8
    assert abs(score(other, labels).top1 - in_pytorch.top1) <= changed  # accuracy moves by at most what changed
