"""Where models come from and how they become programs: model arguments (a .pte, a .pt2,
``file.py:NAME``, ``zoo:NAME``), the model zoo, the one export path (torch.export, lowering, .pte and
ETRecord written atomically, cached) and reading .pte files.

Nothing heavy is imported here; torch and executorch load when a model is built or lowered.
"""

from rebirth.models.export import (
                           BACKENDS,
                           Backend,
                           Exported,
                           ensure_pte,
                           export_model,
                           import_heavy,
                           lower,
                           probe_pte,
                           write_lowered,
                           write_program,
)
from rebirth.models.pte import PteFile, check_pte, read_pte
from rebirth.models.sources import (
                           PT2,
                           PTE,
                           PYTHON,
                           ZOO,
                           ModelSpec,
                           import_function,
                           load_exported,
                           load_python,
                           parse_spec,
)
from rebirth.models.zoo import ZOO as ZOO_ENTRIES
from rebirth.models.zoo import ZooEntry

__all__ = ["BACKENDS", "PT2", "PTE", "PYTHON", "ZOO", "ZOO_ENTRIES", "Backend", "Exported", "ModelSpec", "PteFile",
           "ZooEntry", "check_pte", "ensure_pte", "export_model", "import_function", "import_heavy", "load_exported",
           "load_python", "lower", "parse_spec", "probe_pte", "read_pte", "write_lowered", "write_program"]
