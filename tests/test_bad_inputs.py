"""A user's mistake gets one clear line on stderr, exit code 2, no traceback, no JSON."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from rebirth import cli
from rebirth.devices.local import LocalDevice
from tests.foreign import export_plain


def run_cli(capsys, *argv):
    code = cli.profile_main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("rebirth:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_missing_file(capsys, tmp_path):
    code, err = run_cli(capsys, tmp_path / "nope.pte", "--json", tmp_path / "p.json")
    assert code == 2
    assert "no such file" in one_error_line(err)
    assert not (tmp_path / "p.json").exists()


def test_a_file_that_is_not_a_pte(capsys, tmp_path):
    fake = tmp_path / "model.pte"
    fake.write_text("this is a text file, not a program\n" * 10)
    code, err = run_cli(capsys, fake)
    assert code == 2
    assert "not an ExecuTorch .pte" in one_error_line(err)


def test_a_file_of_another_kind(capsys, tmp_path):
    other = tmp_path / "weights.bin"
    other.write_bytes(b"\0" * 64)
    code, err = run_cli(capsys, other)
    assert code == 2
    assert "expected a .pte, a .pt2, file.py:NAME or zoo:NAME" in one_error_line(err)


@pytest.mark.parametrize("keep", [0.05, 0.5, 0.97])
def test_a_truncated_pte(capsys, firenet_copy, keep):
    pte = firenet_copy["xnnpack"]
    data = pte.read_bytes()
    pte.write_bytes(data[: int(len(data) * keep)])
    code, err = run_cli(capsys, pte)
    assert code == 2
    assert "truncated .pte" in one_error_line(err)


def test_a_corrupt_program_inside_a_complete_file(capsys, firenet_copy):
    pte = firenet_copy["portable"]
    data = bytearray(pte.read_bytes())
    data[64:400] = bytes(range(256)) + bytes(80)  # clobber the program tables, keep the header
    pte.write_bytes(bytes(data))
    code, err = run_cli(capsys, pte)
    assert code == 2
    assert pte.name in one_error_line(err)


def test_unknown_device(capsys, firenet_ptes):
    code, err = run_cli(capsys, firenet_ptes["portable"], "--device", "s6")
    assert code == 2
    assert "unknown device 's6'" in one_error_line(err)


def test_unknown_zoo_model(capsys):
    code, err = run_cli(capsys, "zoo:vgg16")
    assert code == 2
    assert "unknown zoo model 'vgg16'" in one_error_line(err)


class TorchLRN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.lrn = nn.LocalResponseNorm(5)

    def forward(self, x):
        return self.lrn(self.conv(x))


def test_a_pte_that_needs_an_operator_the_runtime_lacks(capsys, tmp_path):
    from rebirth.contract.quiet import quiet

    with quiet():
        pte = export_plain(TorchLRN().eval(), (torch.randn(1, 3, 12, 12),), "portable", tmp_path / "lrn.pte")
    code, err = run_cli(capsys, pte, "--json", tmp_path / "p.json", "--iterations", "2")
    assert code == 2
    line = one_error_line(err)
    assert "aten::avg_pool3d.out" in line and "operator" in line
    assert not (tmp_path / "p.json").exists()


def test_an_etrecord_of_another_model_is_reported_and_ignored(capsys, firenet_copy, tmp_path):
    from rebirth.contract.quiet import quiet

    with quiet():
        other = export_plain(TorchLRN().eval(), (torch.randn(1, 3, 12, 12),), "xnnpack", tmp_path / "other.pte")
    json_path = tmp_path / "p.json"
    code = cli.profile_main([str(firenet_copy["xnnpack"]), "--etrecord", str(other.with_suffix(".etrecord")),
                             "--iterations", "3", "--json", str(json_path), "-q"])
    err = capsys.readouterr().err
    assert code == 0
    assert "does not belong to firenet_xnnpack.pte" in err and "without layers" in err
    from rebirth.contract.profile import Profile

    result = Profile.load(json_path)
    assert all(op.layer is None for op in result.ops)
    assert result.model.etrecord is None


def test_the_etrecord_of_the_other_backend_is_reported(capsys, firenet_copy):
    shutil.copy(firenet_copy["portable"].with_suffix(".etrecord"), firenet_copy["xnnpack"].with_suffix(".etrecord"))
    code = cli.profile_main([str(firenet_copy["xnnpack"]), "--iterations", "3", "-q"])
    assert code == 0
    assert "does not belong" in capsys.readouterr().err


def test_an_etrecord_that_is_not_one(capsys, firenet_copy):
    firenet_copy["portable"].with_suffix(".etrecord").write_bytes(b"garbage")
    code = cli.profile_main([str(firenet_copy["portable"]), "--iterations", "2", "-q"])
    assert code == 0
    assert "not a readable ETRecord" in capsys.readouterr().err


class NoTracerDevice(LocalDevice):
    """The local device running a runner built without the event tracer: the ETDump it
    leaves behind is empty, as ExecuTorch's executor_runner leaves it."""

    def run(self, request, workdir, progress=None):
        result = super().run(request, workdir, progress)
        result.etdump_path.write_bytes(b"")
        return result


def test_an_empty_etdump_says_how_to_rebuild_the_runner(capsys, firenet_ptes, monkeypatch, tmp_path):
    from rebirth.usecases import profiling

    monkeypatch.setattr(profiling, "open_device", lambda name: NoTracerDevice("no-tracer"))
    code, err = run_cli(capsys, firenet_ptes["portable"], "--iterations", "2", "--json", tmp_path / "p.json")
    assert code == 2
    line = one_error_line(err)
    assert "empty ETDump" in line and "-DEXECUTORCH_ENABLE_EVENT_TRACER=ON" in line
    assert not (tmp_path / "p.json").exists()


def test_an_existing_json_survives_a_failed_profile(capsys, tmp_path):
    json_path = tmp_path / "p.json"
    json_path.write_text('{"kept": true}')
    code, _ = run_cli(capsys, tmp_path / "missing.pte", "--json", json_path)
    assert code == 2
    assert json_path.read_text() == '{"kept": true}'


def test_bad_option_values_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.profile_main(["x.pte", "--iterations", "0"])
    assert exit_info.value.code == 2


def test_the_console_script_fails_cleanly_in_a_real_process(tmp_path):
    done = subprocess.run([sys.executable, "-m", "rebirth.cli", "profile", str(tmp_path / "x.pte")],
                          capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert done.returncode == 2
    assert done.stderr.strip() == f"rebirth: error: {tmp_path / 'x.pte'}: no such file"


def test_a_json_path_that_cannot_be_written(capsys, firenet_ptes, tmp_path):
    folder = tmp_path / "taken"
    folder.mkdir()
    code, err = run_cli(capsys, firenet_ptes["portable"], "--iterations", "2", "-q", "--json", folder)
    assert code == 2
    assert "cannot write the profile" in one_error_line(err)
    assert list(folder.iterdir()) == []
