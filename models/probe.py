"""The probe model `rebirth devices check` runs to see whether a runner writes an ETDump:
one linear layer, lowered to the portable runtime so that any executor_runner can run it."""

import torch


def probe():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU()).eval(), (torch.ones(1, 16),)
