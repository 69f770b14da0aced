"""The lowering worker (``models.lowering``): a second process lowers float programs while the slimmer lowers its
int8 one; what it writes runs as the program lowered here does, and what it cannot do is lowered here."""

import pytest
import torch
from torch import nn

from rebirth.models.lowering import Lowering, copy_written
from rebirth.slimmer.output import write_programs
from rebirth.slimmer.steps import Program

INPUTS = (torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)),)


def small() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()


def outputs(pte) -> torch.Tensor:
    from rebirth.devices.runner import load_runtime

    module = load_runtime()._load_for_executorch(str(pte), enable_etdump=False, debug_buffer_size=0)
    return torch.as_tensor(module.forward(INPUTS)[0])


@pytest.fixture
def lowered():
    """A small model, its exported program, a Lowering whose worker was given it, and what the worker wrote."""
    model = small()
    exported = torch.export.export(model, INPUTS)
    lowering = Lowering("xnnpack")
    try:
        lowering.submit(id(model), exported, model)
        yield model, exported, lowering, lowering.written(id(model))
    finally:
        lowering.close()


def test_the_worker_writes_a_program_that_runs_as_the_one_lowered_here(tmp_path, lowered):
    from rebirth.models import lower, write_lowered

    model, exported, lowering, written = lowered
    assert written is not None and written.with_suffix(".etrecord").stat().st_size > 0
    here = tmp_path / "here.pte"
    write_lowered(lower(exported, "xnnpack"), "xnnpack", here, "test")
    copied = copy_written(written, tmp_path / "out" / "copied.pte", "test", "xnnpack", exported)
    assert copied.etrecord is not None and copied.etrecord.exists() and copied.pte.with_suffix(".pt2").exists()
    assert torch.equal(outputs(copied.pte), outputs(here))
    assert torch.allclose(outputs(here), model(*INPUTS), atol=1e-5)
    lowering.close()
    assert not lowering.folder.exists()


def test_what_the_worker_cannot_lower_is_answered_none_and_written_here(tmp_path):
    model = small()
    lowering = Lowering("no-such-backend")  # the worker's lowering raises on it
    try:
        lowering.submit(id(model), torch.export.export(model, INPUTS), model)
        assert lowering.written(id(model)) is None
        assert lowering.written(12345) is None  # never submitted
        files = write_programs([Program("slim", model)], INPUTS, "xnnpack", tmp_path, "test", lowering)
        assert [file.name for file in files] == ["slim.pte", "slim.etrecord"]
        assert torch.allclose(outputs(tmp_path / "slim.pte"), model(*INPUTS), atol=1e-5)
    finally:
        lowering.close()


def test_a_worker_that_died_is_answered_none_and_the_next_close_is_clean():
    first, second = small(), small()
    lowering = Lowering("xnnpack")
    try:
        lowering.submit(id(first), torch.export.export(first, INPUTS), first)
        assert lowering._process is not None
        lowering._process.kill()
        lowering._process.wait()
        lowering.submit(id(second), torch.export.export(second, INPUTS), second)  # into a closed pipe
        assert lowering.written(id(first)) is None and lowering.written(id(second)) is None
    finally:
        lowering.close()
    assert not lowering.folder.exists()


def test_write_programs_takes_the_worker_program_and_keeps_the_pt2_where_asked(tmp_path, lowered):
    model, exported, lowering, worker = lowered
    assert worker is not None
    files = write_programs([Program("float", model, exported, keep_pt2=True)], INPUTS, "xnnpack", tmp_path, "test",
                           lowering)
    assert [file.name for file in files] == ["slim-float.pt2", "slim-float.pte", "slim-float.etrecord"]
    assert (tmp_path / "slim-float.pte").read_bytes() == worker.read_bytes()
    assert torch.export.load(str(tmp_path / "slim-float.pt2")).module()(*INPUTS).shape == (1, 3)


def test_programs_for_later_are_sent_after_the_next_submitted_one_and_not_before():
    first, later = small(), small()
    asked: list[int] = []

    def exported():
        asked.append(1)
        return torch.export.export(later, INPUTS)

    lowering = Lowering("xnnpack")
    try:
        lowering.later(id(later), exported, later)
        assert lowering.written(id(later)) is None and lowering._process is None and not asked  # nothing started
        lowering.submit(id(first), torch.export.export(first, INPUTS), first)
        assert asked == [1]
        assert lowering.written(id(first)) is not None and lowering.written(id(later)) is not None
    finally:
        lowering.close()


def test_a_lowering_nobody_closed_stops_its_worker_when_it_is_collected():
    import gc

    model = small()
    lowering = Lowering("xnnpack")
    lowering.submit(id(model), torch.export.export(model, INPUTS), model)
    process, folder = lowering._process, lowering.folder
    assert process is not None and folder.exists()
    del lowering
    gc.collect()
    assert process.poll() is not None and not folder.exists()


def test_a_worker_that_cannot_start_leaves_every_job_to_this_process(monkeypatch):
    import sys

    model = small()
    lowering = Lowering("xnnpack")
    monkeypatch.setattr(sys, "executable", str(lowering.folder / "no-such-python"))
    try:
        lowering.submit(id(model), torch.export.export(model, INPUTS), model)
        assert lowering.written(id(model)) is None
    finally:
        lowering.close()
