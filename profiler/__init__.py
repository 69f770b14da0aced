"""The per-layer profiler: a prepared program run on an open device -> ETDump + ETRecord -> a Profile record;
two programs measured side by side (paired blocks); and regression checks judged on such measurements.

Nothing heavy is imported here: torch and executorch load when a model is exported or an ETDump read,
so that ``rebirth-profile --help`` stays fast. Which device and which model are the use cases' business
(``rebirth.usecases``).
"""

from rebirth.profiler.build import Measurement, build_profile
from rebirth.profiler.measure import ProfileOptions, Program, prepare, profile_program
from rebirth.profiler.taxonomy import Rule, classify, register
from rebirth.profiler.timeline import Timelines, cap, read_timeline

__all__ = ["Measurement", "ProfileOptions", "Program", "Rule", "Timelines", "build_profile", "cap", "classify",
           "prepare", "profile_program", "read_timeline", "register"]
