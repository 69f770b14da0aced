"""DeepRebirth slimming: each technique a step behind one protocol (``slimmer.steps``: the merges of non-tensor
layers into their tensor neighbours, channel reduction, low-rank decomposition, int8), ranked by what a profile
measured, fine-tuned layer-wise and judged by one ``Judge``; the driver (``slim``) runs the steps the options ask
for and chooses the programs to write (``write_programs``).

The passes are in ``slimmer.passes``; ``run_passes`` runs a list of them over a copy of a model to a fixed point
(for example every exact one: BatchNorm folded, parallel convolutions merged, no-ops removed). The use cases that
profile, slim and measure are in ``rebirth.usecases.slimming``. Importing this package imports torch.
"""

from rebirth.slimmer.judge import Judge
from rebirth.slimmer.loading import data_for, load_model, slimmable, user_data
from rebirth.slimmer.options import SlimOptions
from rebirth.slimmer.output import write_programs
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
from rebirth.slimmer.plan import layer_times
from rebirth.slimmer.record import slim_record
from rebirth.slimmer.slim import SlimResult, plan_offers, slim
from rebirth.slimmer.steps import (
                            STEPS,
                            DeviceTimer,
                            Program,
                            Step,
                            StepContext,
                            StepResult,
                            check_options,
                            register,
                            steps_for,
)

__all__ = [
    "APPROXIMATE_PASSES", "DeviceTimer", "EXACT_PASSES", "FoldBatchNormIntoNext", "FoldBatchNormIntoPrevious",
    "Judge", "LayerCosts", "Match", "MergeParallelConvs", "MergePoolIntoConv", "Program", "RemoveLRN", "RemoveNoOps",
    "RemoveThinBranch", "ReplacePoolBranch", "STEPS", "ShapedPass", "SlimOptions", "SlimPass", "SlimResult", "Step",
    "StepContext", "StepResult", "check_options", "data_for", "layer_times", "load_model", "plan_offers", "register",
    "run_passes", "slim", "slim_record", "slimmable", "steps_for", "user_data", "write_programs",
]
