"""Slimming passes: one contract (``SlimPass``), exact and approximate transforms."""

from slimmer.passes.base import Match, SlimPass
from slimmer.passes.branch import RemoveThinBranch, ReplacePoolBranch
from slimmer.passes.cleanup import RemoveNoOps
from slimmer.passes.fold_bn import FoldBatchNormIntoNext, FoldBatchNormIntoPrevious
from slimmer.passes.manager import run_passes
from slimmer.passes.merge_parallel import MergeParallelConvs
from slimmer.passes.streamline import MergePoolIntoConv, RemoveLRN

EXACT_PASSES = (RemoveNoOps, FoldBatchNormIntoPrevious, FoldBatchNormIntoNext, MergeParallelConvs)

__all__ = ["EXACT_PASSES", "FoldBatchNormIntoNext", "FoldBatchNormIntoPrevious", "Match", "MergeParallelConvs",
           "MergePoolIntoConv", "RemoveLRN", "RemoveNoOps", "RemoveThinBranch", "ReplacePoolBranch", "SlimPass", "run_passes"]
