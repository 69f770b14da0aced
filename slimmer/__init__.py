"""DeepRebirth slimming: graph passes that merge non-tensor layers into their tensor neighbours.

Exact passes (BatchNorm folding, parallel convolutions merged, no-ops removed) and approximate
ones (pooling merged into a convolution's stride, LRN removed, the Inception pooling branch made
one convolution) are here; the profile-guided plan and layer-wise fine-tuning come next (issue 4).
"""

from slimmer.passes import (EXACT_PASSES, FoldBatchNormIntoNext, FoldBatchNormIntoPrevious, Match,
                            MergeParallelConvs, MergePoolIntoConv, RemoveLRN, RemoveNoOps, RemoveThinBranch, ReplacePoolBranch,
                            SlimPass, run_passes)

__all__ = ["EXACT_PASSES", "FoldBatchNormIntoNext", "FoldBatchNormIntoPrevious", "Match", "MergeParallelConvs",
           "MergePoolIntoConv", "RemoveLRN", "RemoveNoOps", "RemoveThinBranch", "ReplacePoolBranch", "SlimPass", "run_passes"]
