"""devices.toml: where it is found, what the smallest entry means, and wrong entries as user errors."""

from pathlib import Path

import pytest

from rebirth.cli import main
from rebirth.contract.errors import ConfigError, UnknownDeviceError
from rebirth.devices.inventory import DEFAULT_WORKDIR, inventory_path, load_inventory
from rebirth.devices.registry import open_device


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working directory without a devices.toml, and a config directory of our own."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("REBIRTH_DEVICES", raising=False)
    return tmp_path


def test_the_smallest_entry_works_with_everything_defaulted(elsewhere):
    Path("devices.toml").write_text('[devices.s6]\naddress = "127.0.0.1:5555"\n')
    s6 = load_inventory()["s6"]
    assert (s6.transport, s6.address, s6.workdir, s6.runner, s6.cpu_mask, s6.threads) == \
        ("tcp", "127.0.0.1:5555", DEFAULT_WORKDIR, None, None, None)
    assert DEFAULT_WORKDIR.startswith("/data/local/tmp/rebirth")
    device = open_device("s6")
    assert device.name == "s6" and device.transport.target == "127.0.0.1:5555"


def test_search_order_working_directory_then_variable_then_config_dir(elsewhere, monkeypatch):
    user = elsewhere / "config" / "rebirth" / "devices.toml"
    user.parent.mkdir(parents=True)
    user.write_text('[devices.user]\naddress = "10.0.0.1:5555"\n')
    assert inventory_path() == user
    named = elsewhere / "farm.toml"
    named.write_text('[devices.farm]\naddress = "farm:7401"\n')
    monkeypatch.setenv("REBIRTH_DEVICES", str(named))
    assert list(load_inventory()) == ["farm"]
    Path("devices.toml").write_text('[devices.here]\naddress = "127.0.0.1:5555"\n')
    assert list(load_inventory()) == ["here"]


def test_relative_runner_and_key_paths_are_relative_to_the_file(elsewhere, monkeypatch):
    named = elsewhere / "lab" / "devices.toml"
    named.parent.mkdir()
    named.write_text('[devices.p7]\ntransport = "usb"\nserial = "28031FDH2000BY"\nrunner = "build/executor_runner"\n'
                     'cpu_mask = "0xC0"\nthreads = 2\nwarmup = 5\niterations = 50\ncooldown_s = 2\n')
    monkeypatch.setenv("REBIRTH_DEVICES", str(named))
    p7 = load_inventory()["p7"]
    assert p7.runner == named.parent / "build/executor_runner"
    assert (p7.transport, p7.serial, p7.cpu_mask, p7.threads, p7.warmup, p7.iterations, p7.cooldown_s) == \
        ("usb", "28031FDH2000BY", "c0", 2, 5, 50, 2.0)


@pytest.mark.parametrize("body, words", [
    ('[devices.s6]\nadress = "127.0.0.1:5555"\n', "unknown key 'adress'"),
    ('[devices.s6]\nthreads = 4\n', "needs address"),
    ('[devices.s6]\naddress = "127.0.0.1:99999"\n', "port"),
    ('[devices.s6]\naddress = "x:1"\nthreads = "four"\n', "threads must be int"),
    ('[devices.s6]\naddress = "x:1"\nworkdir = "../tmp"\n', "workdir must be an absolute folder"),
    ('[devices.s6]\naddress = "x:1"\ncpu_mask = "big"\n', "cpu_mask"),
    ('[devices.s6]\naddress = "x:1"\ntransport = "bluetooth"\n', "transport must be one of"),
    ('[devices.local]\naddress = "x:1"\n', "cannot name a phone"),
    ('[devices.s6]\ntransport = "adb-server"\n', "needs serial"),
    ('[devices.s6\naddress = "x:1"\n', "not valid TOML"),
    ('[phones.s6]\naddress = "x:1"\n', "expected only [devices.NAME]"),
])
def test_wrong_entries_say_what_is_wrong_and_where(elsewhere, body, words):
    Path("devices.toml").write_text(body)
    with pytest.raises(ConfigError) as error:
        load_inventory()
    assert words in str(error.value) and "devices.toml" in str(error.value)


def test_a_wrong_inventory_is_one_line_and_exit_2(elsewhere, capsys, firenet_ptes):
    Path("devices.toml").write_text('[devices.s6]\nadress = "127.0.0.1:5555"\n')
    assert main(["profile", "-q", "--device", "s6", str(firenet_ptes["portable"])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown key 'adress'" in err and "Traceback" not in err


def test_an_unknown_name_lists_what_the_inventory_has(elsewhere):
    Path("devices.toml").write_text('[devices.s6]\naddress = "127.0.0.1:5555"\n[devices.p7]\naddress = "x:1"\n')
    with pytest.raises(UnknownDeviceError) as error:
        open_device("s7")
    assert "p7, s6" in str(error.value) and "[devices.s7]" in str(error.value)


def test_without_any_inventory_the_message_says_where_it_looked(elsewhere):
    with pytest.raises(UnknownDeviceError) as error:
        open_device("s6")
    assert "no devices.toml" in str(error.value) and "REBIRTH_DEVICES" in str(error.value)


def test_a_variable_naming_a_missing_file_is_an_error(elsewhere, monkeypatch):
    monkeypatch.setenv("REBIRTH_DEVICES", str(elsewhere / "nope.toml"))
    with pytest.raises(ConfigError):
        load_inventory()


def test_usb_without_libusb_says_what_to_install(elsewhere):
    import adb_shell.adb_device

    from rebirth.contract.errors import UnreachableError

    if adb_shell.adb_device.UsbTransport is not None:
        pytest.skip("libusb1 is installed here")
    Path("devices.toml").write_text('[devices.p7]\ntransport = "usb"\nserial = "28031FDH2000BY"\n')
    with pytest.raises(UnreachableError) as error:
        open_device("p7").describe()
    assert "pip install 'adb-shell[usb]'" in str(error.value) and "p7" in str(error.value)
