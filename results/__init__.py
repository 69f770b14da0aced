"""The result store: every Profile a farm run measured, numbered per device fingerprint, and named baselines
of them for regression checks, in SQLite or on a PostgreSQL server (see ``results.store``)."""

from rebirth.results.database import DatabaseStore
from rebirth.results.store import (
                           baseline_members,
                           baseline_profiles,
                           current_branch,
                           current_commit,
                           import_file_store,
                           latest_runs,
                           list_runs,
                           load_baseline,
                           load_result,
                           open_store,
                           results_to_judge,
                           runs_to_judge,
                           save_baseline,
                           save_run,
                           store_root,
                           using,
)

__all__ = ["DatabaseStore", "baseline_members", "baseline_profiles", "current_branch", "current_commit",
           "import_file_store", "latest_runs", "list_runs", "load_baseline", "load_result", "open_store",
           "results_to_judge", "runs_to_judge", "save_baseline", "save_run", "store_root", "using"]
