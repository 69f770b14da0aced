"""Commands that start at once: what a ready .pte's profile needs is read without ExecuTorch's compiler, and the
fast readers agree with ExecuTorch's own (the oracle)."""

import subprocess
import sys

import pytest

from rebirth.profiler.etrecord import _parse, _read_serialized, load_source_map


@pytest.mark.parametrize("backend", ["portable", "xnnpack"])
def test_an_etrecord_reads_as_executorch_reads_it(firenet_ptes, backend):
    etrecord = firenet_ptes[backend].with_suffix(".etrecord")
    fast = _read_serialized(etrecord, "forward")
    assert fast == _parse(etrecord, "forward")
    assert len(fast.nodes) > 20 and fast.instructions and any(node.layer for node in fast.nodes.values())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["googlenet-small", "alexnet-small", "resnet50-small", "mobilenet_v2-small"])
def test_the_zoos_etrecords_read_as_executorch_reads_them(name, tmp_path):
    from rebirth.models import export_model

    exported = export_model(f"zoo:{name}", "xnnpack", tmp_path / f"{name}.pte")
    assert _read_serialized(exported.etrecord, "forward") == _parse(exported.etrecord, "forward")


def test_reading_an_etrecord_imports_neither_torch_nor_the_compiler(firenet_ptes, tmp_path):
    etrecord = firenet_ptes["xnnpack"].with_suffix(".etrecord")
    code = ("import sys\nfrom rebirth.profiler.etrecord import load_source_map\n"
            f"source = load_source_map({str(etrecord)!r})\n"
            "print(len(source.nodes), sorted({'torch', 'executorch.exir'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.stdout.split(" ", 1) == [str(len(load_source_map(etrecord).nodes)), "[]\n"], done.stderr


def test_profiling_a_ready_pte_imports_neither_torch_nor_the_compiler(firenet_ptes, tmp_path):
    """`rebirth-profile model.pte` reads the .pte, its ETRecord and the ETDump itself: it starts at once."""
    pte = firenet_ptes["xnnpack"]
    code = ("import sys\nfrom rebirth import cli\n"
            f"status = cli.main(['profile', {str(pte)!r}, '--iterations', '3', '-q', '--json', 'p.json'])\n"
            "print(status, sorted({'torch', 'executorch.exir', 'executorch.devtools.inspector'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.stdout.strip() == "0 []", done.stdout + done.stderr
    from rebirth.contract.profile import Profile

    profile = Profile.load(tmp_path / "p.json")
    assert profile.summary.attributed_share >= 0.95 and profile.device.runner_kind == "native"
