"""The zoo, LRN lowering, and every way of naming a model."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from rebirth.contract.errors import InputError
from rebirth.models import zoo
from rebirth.models.sources import PT2, PYTHON, ZOO, parse_spec
from rebirth.models.zoo.lrn import LocalResponseNorm

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("size, alpha, beta, k", [(5, 1e-4, 0.75, 1.0), (5, 1e-4, 0.75, 2.0), (4, 1e-2, 0.5, 1.0),
                                                  (3, 1.0, 1.0, 0.5)])
def test_lrn_equals_torch_lrn(size, alpha, beta, k):
    x = torch.randn(2, 12, 7, 5) * 3
    expected = nn.LocalResponseNorm(size, alpha, beta, k)(x)
    torch.testing.assert_close(LocalResponseNorm(size, alpha, beta, k)(x), expected, rtol=1e-6, atol=1e-6)


def test_lowered_lrn_runs_on_the_portable_runtime_and_matches_eager(tmp_path):
    from executorch.extension.pybindings.portable_lib import _load_for_executorch

    from rebirth.models.export import lower

    model = nn.Sequential(nn.Conv2d(3, 8, 3), LocalResponseNorm(5, k=2.0)).eval()
    x = torch.randn(1, 3, 10, 10)
    program = lower(torch.export.export(model, (x,)), "portable")
    path = tmp_path / "lrn.pte"
    path.write_bytes(program.buffer)
    output = _load_for_executorch(str(path)).forward((x,))[0]
    torch.testing.assert_close(output, model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_models_build_and_classify_digits(name):
    model, (x,) = zoo.build(name)
    assert not model.training
    if not name.endswith("-small"):
        assert x.shape == (1, 3, 224, 224)
        return  # full-size forward passes are exercised by the benchmarks
    assert x.shape[-1] in range(32, 65)
    with torch.no_grad():
        assert model(x).shape == (1, 10)


def test_paper_networks_have_lrn():
    for name in ("googlenet", "alexnet", "googlenet-small", "alexnet-small"):
        model, _ = zoo.build(name)
        assert sum(isinstance(m, LocalResponseNorm) for m in model.modules()) == 2


def test_model_arguments_are_parsed_without_importing_anything(tmp_path):
    assert parse_spec("zoo:googlenet-small").kind == ZOO
    script = tmp_path / "net.py"
    script.write_text("def make():\n    pass\n")
    assert parse_spec(f"{script}:make").kind == PYTHON
    pt2 = tmp_path / "m.pt2"
    pt2.write_bytes(b"x")
    assert parse_spec(str(pt2)).kind == PT2
    with pytest.raises(InputError, match="not a Python function name"):
        parse_spec(f"{script}:not-a-name")
    with pytest.raises(InputError, match="no such file"):
        parse_spec(str(tmp_path / "missing.py") + ":make")


def test_python_file_model_errors_are_user_errors(tmp_path):
    from rebirth.models.sources import load_python

    script = tmp_path / "net.py"
    script.write_text("def make():\n    return 42\n")
    with pytest.raises(InputError, match="must return"):
        load_python(parse_spec(f"{script}:make"))
    with pytest.raises(InputError, match="has no function"):
        load_python(parse_spec(f"{script}:other"))
    script.write_text("import nonexistent_module_xyz\n")
    with pytest.raises(InputError, match="importing it failed"):
        load_python(parse_spec(f"{script}:make"))


def test_a_pt2_and_a_python_factory_profile_with_layers(tmp_path):
    from rebirth.profiler import ProfileOptions
    from rebirth.usecases.profiling import profile
    from tests.foreign import make_firenet

    model, inputs = make_firenet()
    pt2 = tmp_path / "firenet.pt2"
    torch.export.save(torch.export.export(model, inputs), str(pt2))
    options = ProfileOptions(backend="portable", warmup=1, iterations=3)
    from_pt2 = profile(str(pt2), options)
    from_file = profile(f"{ROOT / 'tests' / 'foreign.py'}:make_firenet", options)
    for result in (from_pt2, from_file):
        assert result.model.backend == "portable"
        assert result.summary.attributed_share >= 0.95
    assert [op.op_type for op in from_pt2.ops] == [op.op_type for op in from_file.ops]


def test_a_bad_pt2_is_a_user_error(tmp_path, capsys):
    from rebirth import cli

    pt2 = tmp_path / "broken.pt2"
    pt2.write_bytes(b"not a zip archive")
    assert cli.profile_main([str(pt2)]) == 2
    assert "not a torch.export .pt2" in capsys.readouterr().err


@pytest.mark.slow
def test_export_command_writes_pte_and_etrecord_then_profiles(tmp_path):
    from rebirth import cli

    out = tmp_path / "out" / "fire.pte"
    assert cli.main(["export", f"{ROOT / 'tests' / 'foreign.py'}:make_firenet", "--backend", "xnnpack",
                     "-o", str(out)]) == 0
    assert out.is_file() and out.with_suffix(".etrecord").is_file()
    json_path = tmp_path / "fire.json"
    done = subprocess.run([sys.executable, "-m", "rebirth.cli", "profile", str(out), "--iterations", "4",
                           "--json", str(json_path)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Summary by op type" in done.stdout and "fire1.expand3" in done.stdout
    from rebirth.contract.profile import Profile

    assert Profile.load(json_path).summary.attributed_share >= 0.95


def test_a_pte_cannot_be_exported_again(tmp_path, firenet_ptes, capsys):
    from rebirth import cli

    assert cli.main(["export", str(firenet_ptes["portable"]), "-o", str(tmp_path / "x.pte")]) == 2
    assert "has no PyTorch graph left" in capsys.readouterr().err


def test_help_does_not_import_torch(tmp_path):
    code = ("import sys\nfrom rebirth import cli\ntry:\n    cli.profile_main(['--help'])\n"
            "except SystemExit:\n    pass\nprint('torch' in sys.modules, 'executorch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout.strip().endswith("False False"), done.stdout + done.stderr
    assert "--iterations" in done.stdout
