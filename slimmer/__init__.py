"""DeepRebirth slimming: graph passes that merge non-tensor layers into their tensor neighbours, ranked by
what a profile measured, with layer-wise fine-tuning; and the whole pipeline (profile, slim, profile again).

The passes are in ``slimmer.passes``; ``run_passes`` runs a list of them over a copy of a model to a
fixed point (for example every exact one: BatchNorm folded, parallel convolutions merged, no-ops removed).
Importing this package imports torch.
"""

from rebirth.slimmer.passes import (
                            APPROXIMATE_PASSES,
                            EXACT_PASSES,
                            FoldBatchNormIntoNext,
                            FoldBatchNormIntoPrevious,
                            LayerCosts,
                            Match,
                            MergeParallelConvs,
                            MergePoolIntoConv,
                            RemoveLRN,
                            RemoveNoOps,
                            RemoveThinBranch,
                            ReplacePoolBranch,
                            ShapedPass,
                            SlimPass,
                            run_passes,
)
from rebirth.slimmer.pipeline import (
                            OPTIMIZE_STAGES,
                            Optimized,
                            OptimizeRequest,
                            SlimRequest,
                            optimize,
                            plan_merges,
                            slim_model,
                            slimmable,
)

__all__ = [
    "APPROXIMATE_PASSES", "EXACT_PASSES", "FoldBatchNormIntoNext", "FoldBatchNormIntoPrevious", "LayerCosts",
    "Match", "MergeParallelConvs", "MergePoolIntoConv", "optimize", "OPTIMIZE_STAGES", "Optimized",
    "OptimizeRequest", "plan_merges", "RemoveLRN", "RemoveNoOps", "RemoveThinBranch", "ReplacePoolBranch",
    "run_passes", "ShapedPass", "slim_model", "slimmable", "SlimPass", "SlimRequest",
]
