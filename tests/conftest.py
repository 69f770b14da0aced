import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parent.parent


def _import_installed_rebirth() -> None:
    """The suite tests rebirth as it is installed (tox installs the built package): pytest put the checkout on
    sys.path to import ``tests``, where the checkout's own rebirth/ would be found first. Import the
    installed one before anything else does; submodules then come from it too."""
    on_path = [entry for entry in sys.path if Path(entry or ".").resolve() == CHECKOUT]
    for entry in on_path:
        sys.path.remove(entry)
    import rebirth  # noqa: F401

    sys.path.extend(on_path)


_import_installed_rebirth()

from tests.digitsnet import SOURCE, DigitsNet  # noqa: E402  (after the installed rebirth is imported)
from tests.foreign import export_plain, make_firenet  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def cpu_hog():
    """REBIRTH_TEST_HOG=N keeps N busy loops running for the whole session: the timing tests must hold on a
    machine that is doing other work (run the suite so to prove their margins)."""
    count = int(os.environ.get("REBIRTH_TEST_HOG", "0") or 0)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    yield len(hogs)
    for hog in hogs:
        hog.kill()
        hog.wait()


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Exports made by rebirth go to a cache private to this test session."""
    os.environ["REBIRTH_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session", autouse=True)
def isolated_user(tmp_path_factory):
    """No devices.toml and no ADB key of the person running the tests is read or written."""
    home = tmp_path_factory.mktemp("user")
    os.environ["XDG_CONFIG_HOME"] = str(home / "config")
    os.environ["ANDROID_USER_HOME"] = str(home / "android")
    os.environ.pop("REBIRTH_DEVICES", None)


@pytest.fixture(scope="session")
def firenet_ptes(tmp_path_factory):
    """FireNet exported with plain ExecuTorch for both backends: {backend: path}."""
    from rebirth.contract.quiet import quiet

    folder = tmp_path_factory.mktemp("firenet")
    model, inputs = make_firenet()
    with quiet():
        return {backend: export_plain(model, inputs, backend, folder / f"firenet_{backend}.pte")
                for backend in ("portable", "xnnpack")}


@pytest.fixture
def firenet_copy(firenet_ptes, tmp_path):
    """A copy of both exports in a test's own folder, which the test may damage."""
    copies = {}
    for backend, pte in firenet_ptes.items():
        copies[backend] = tmp_path / pte.name
        shutil.copy(pte, copies[backend])
        shutil.copy(pte.with_suffix(".etrecord"), copies[backend].with_suffix(".etrecord"))
    return copies


@pytest.fixture(scope="session")
def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def trained_digits_net(tmp_path_factory):
    """``(model, loaders, source file)``: DigitsNet trained at 16 px, and a file.py:make / file.py:loaders
    for the command line."""
    import torch

    from rebirth.slimmer.data import digits
    from rebirth.slimmer.train import train

    torch.manual_seed(0)
    model, loaders = DigitsNet(), digits(16)
    accuracy = train(model, loaders.train, loaders.held_out, 12, 3e-3)
    assert accuracy.top1 > 90
    folder = tmp_path_factory.mktemp("digitsnet")
    torch.save(model.state_dict(), folder / "weights.pt")
    (folder / "digitsnet.py").write_text(SOURCE.format(weights=str(folder / "weights.pt")))
    return model.eval(), loaders, folder / "digitsnet.py"
