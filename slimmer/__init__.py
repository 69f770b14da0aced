"""DeepRebirth slimming: graph passes that merge non-tensor layers into their tensor neighbours.

The exact passes are here (BatchNorm folding, parallel convolutions merged, no-ops removed); the
approximate passes, the profile-guided plan and layer-wise fine-tuning come next (issue 4).
"""

from slimmer.passes import (EXACT_PASSES, FoldBatchNormIntoNext, FoldBatchNormIntoPrevious, Match,
                            MergeParallelConvs, RemoveNoOps, SlimPass, run_passes)

__all__ = ["EXACT_PASSES", "FoldBatchNormIntoNext", "FoldBatchNormIntoPrevious", "Match", "MergeParallelConvs",
           "RemoveNoOps", "SlimPass", "run_passes"]
