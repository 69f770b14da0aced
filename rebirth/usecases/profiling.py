"""`rebirth profile` (and `rebirth-profile`), `rebirth export` and `rebirth compare`: one model profiled on a
device, a model lowered to a .pte, and two models measured side by side on one device."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from rebirth.contract.paired import Budget, Question
from rebirth.contract.profile import Profile
from rebirth.devices import ProgressCallback, open_device
from rebirth.models import Exported, export_model, parse_spec
from rebirth.profiler import ProfileOptions, Timelines, prepare, profile_program
from rebirth.profiler.measure import Stage
from rebirth.profiler.paired import BUDGET, PRECISION, PairedResult, compare_programs


def profile(model: str, options: Optional[ProfileOptions] = None, *, progress: Optional[ProgressCallback] = None,
            stage: Optional[Stage] = None, timelines: Optional[Timelines] = None) -> Profile:
    """Export ``model`` if needed, run it on ``options.device`` and build its Profile (and its timeline into
    ``timelines`` when given).

    Raises:
        InputError: the model argument, file or ETDump is wrong, or the device is unknown.
        DeviceError: the device is unreachable or the runner failed.
    """
    options = options or ProfileOptions()
    parse_spec(model)  # a wrong model argument is reported first, an unknown device next, before any export
    with open_device(options.device) as device:
        program = prepare(model, options.backend_on(device.defaults), options.etrecord, stage)
        return profile_program(program, device, options, progress, stage, timelines=timelines)


def export(model: str, output: Path, *, backend: str = "xnnpack") -> Exported:
    """Lower ``model`` (a .pt2, file.py:NAME or zoo:NAME) to ``output`` and its ETRecord beside it.

    Raises:
        InputError: the model cannot be read or exported.
    """
    return export_model(model, backend, output)


def compare(model_a: str, model_b: str, options: Optional[ProfileOptions] = None, *,
            question: Question = PRECISION, budget: Budget = BUDGET, progress: Optional[ProgressCallback] = None,
            stage: Optional[Stage] = None, etrecords: tuple[Optional[Path], Optional[Path]] = (None, None),
            timelines: Optional[Timelines] = None) -> PairedResult:
    """Export both models if needed, then measure them side by side on ``options.device`` until ``question`` is
    answered or ``budget`` spent, and trace one run of each (their timelines, A then B, into ``timelines``).

    Raises:
        InputError: a model argument, file or export is wrong, or the device is unknown.
        DeviceError: the device failed.
    """
    options = options or ProfileOptions()
    parse_spec(model_a), parse_spec(model_b)
    with open_device(options.device) as device:
        backend = options.backend_on(device.defaults)
        a = prepare(model_a, backend, etrecords[0], stage)
        b = prepare(model_b, backend, etrecords[1], stage)
        return compare_programs(a, b, device, options, question, budget, progress, stage, timelines=timelines)
