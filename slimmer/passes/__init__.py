"""Slimming passes: one contract (``SlimPass``), exact and approximate transforms.

A new merge pass is a ``SlimPass`` in its own module, with its tests, listed here in ``EXACT_PASSES`` or
``APPROXIMATE_PASSES``: the planner asks each pass for its matches and for what each is worth. A compression pass
(``stage = 1``) becomes a step of its own in ``slimmer.steps``.
"""

from rebirth.slimmer.passes.base import LayerCosts, Match, ShapedPass, SlimPass
from rebirth.slimmer.passes.branch import RemoveThinBranch, ReplacePoolBranch
from rebirth.slimmer.passes.channels import ReduceChannels
from rebirth.slimmer.passes.cleanup import RemoveNoOps
from rebirth.slimmer.passes.fold_bn import FoldBatchNormIntoNext, FoldBatchNormIntoPrevious
from rebirth.slimmer.passes.lowrank import DecomposeLowRank
from rebirth.slimmer.passes.manager import run_passes
from rebirth.slimmer.passes.merge_parallel import MergeParallelConvs
from rebirth.slimmer.passes.streamline import MergePoolIntoConv, RemoveLRN

EXACT_PASSES: tuple[type[SlimPass], ...] = (RemoveNoOps, FoldBatchNormIntoPrevious, FoldBatchNormIntoNext,
                                            MergeParallelConvs)
APPROXIMATE_PASSES: tuple[type[SlimPass], ...] = (RemoveLRN, MergePoolIntoConv, ReplacePoolBranch, RemoveThinBranch)
"""``ReduceChannels`` and ``DecomposeLowRank`` are compressions, each made as one step over all the layers where it
pays, when asked for (``slimmer.steps``)."""

__all__ = ["APPROXIMATE_PASSES", "DecomposeLowRank", "EXACT_PASSES", "FoldBatchNormIntoNext",
           "FoldBatchNormIntoPrevious", "LayerCosts", "Match", "MergeParallelConvs", "MergePoolIntoConv", "RemoveLRN",
           "ReduceChannels", "RemoveNoOps", "RemoveThinBranch", "ReplacePoolBranch", "ShapedPass", "SlimPass",
           "run_passes"]
