"""The per-layer profiler: a model on a device -> ETDump + ETRecord -> a Profile record; and the same
on a farm of devices at once.

Nothing heavy is imported here: torch and executorch load when a model is exported or an ETDump read,
so that ``rebirth-profile --help`` stays fast.
"""

from rebirth.profiler.build import Measurement, build_profile
from rebirth.profiler.farm import FarmListener, FarmRequest, FarmRun, Stored, run_farm
from rebirth.profiler.measure import ProfileOptions, Program, prepare, profile, profile_program
from rebirth.profiler.taxonomy import Rule, classify, register

__all__ = ["FarmListener", "FarmRequest", "FarmRun", "Measurement", "ProfileOptions", "Program", "Rule", "Stored",
           "build_profile", "classify", "prepare", "profile", "profile_program", "register", "run_farm"]
