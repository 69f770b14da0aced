"""The result store: every Profile a farm run measured, numbered per device fingerprint, and named
baselines of them for regression checks (see ``results.store``)."""

from rebirth.results.store import (
                           baseline_members,
                           baseline_profiles,
                           current_commit,
                           latest_runs,
                           list_runs,
                           load_baseline,
                           load_result,
                           results_to_judge,
                           save_baseline,
                           save_run,
                           store_root,
)

__all__ = ["baseline_members", "baseline_profiles", "current_commit", "latest_runs", "list_runs", "load_baseline",
           "load_result", "results_to_judge", "save_baseline", "save_run", "store_root"]
