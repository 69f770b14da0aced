"""devices.toml: where it is found, what the smallest entry means, and wrong entries as user errors."""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Optional

import pytest

from rebirth.cli import main
from rebirth.contract.errors import ConfigError, UnknownDeviceError
from rebirth.devices.inventory import DEFAULT_WORKDIR, inventory_path, load_inventory, read_inventory
from rebirth.devices.registry import open_device
from rebirth.devices.tables import FieldError, UnknownKeyError, at_least, load_table


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
    ('[devices.s6]\nadress = "127.0.0.1:5555"\n', "[devices.s6]: unknown key 'adress' (did you mean 'address'?)"),
    ('[devices.s6]\nthreads = 4\n', "needs address"),
    ('[devices.s6]\naddress = "127.0.0.1:99999"\n',
     "address is not host:port ('127.0.0.1:99999': the port must be a number between 1 and 65535)"),
    ('[devices.s6]\naddress = ":5555"\n', "address is not host:port (':5555' has no host)"),
    ('[devices.s6]\naddress = 5555\n', "address must be a string, not an integer (5555)"),
    ('[devices.s6]\naddress = "x:1"\nthreads = "four"\n', 'threads must be an integer, not a string ("four")'),
    ('[devices.s6]\naddress = "x:1"\nthreads = 2.5\n', "threads must be an integer, not a number (2.5)"),
    ('[devices.s6]\naddress = "x:1"\nthreads = true\n', "threads must be an integer, not a boolean (true)"),
    ('[devices.s6]\naddress = "x:1"\nthreads = 0\n', "threads must be at least 1"),
    ('[devices.s6]\naddress = "x:1"\nwarmup = -1\n', "warmup must not be negative"),
    ('[devices.s6]\naddress = "x:1"\ncooldown_s = "2s"\n', 'cooldown_s must be a number, not a string ("2s")'),
    ('[devices.s6]\naddress = "x:1"\nworkdir = "../tmp"\n', "workdir must be an absolute folder"),
    ('[devices.s6]\naddress = "x:1"\nworkdir = "/"\n', "workdir must be an absolute folder"),
    ('[devices.s6]\naddress = "x:1"\ncpu_mask = "big"\n', 'cpu_mask must be a non-zero hex mask such as "f0"'),
    ('[devices.s6]\naddress = "x:1"\ncpu_mask = "0x0"\n', 'cpu_mask must be a non-zero hex mask such as "f0"'),
    ('[devices.s6]\naddress = "x:1"\ntransport = "bluetooth"\n',
     'transport must be one of tcp, usb, adb-server, not a string ("bluetooth")'),
    ('[devices.s6]\naddress = "x:1"\nkey = ["a"]\n', "key must be a string, not an array"),
    ('[devices.local]\naddress = "x:1"\n', "cannot name a phone"),
    ('[devices.s6]\ntransport = "adb-server"\n', "needs serial"),
    ('[devices.s6\naddress = "x:1"\n', "not valid TOML"),
    ('[phones.s6]\naddress = "x:1"\n', "expected only [devices.NAME] tables, a [groups], an [stf] and a [local] table; "
                                       "found 'phones'"),
    ('[device.s6]\naddress = "x:1"\n', "found 'device' (did you mean [devices]?)"),
    ('devices = "s6"\n', "[local] table; devices must be a table, not a string"),
    ('[devices]\ns6 = "127.0.0.1:5555"\n', "[devices.s6] must be a table"),
    ('[stf]\nurl = "https://stf"\ntokn = "x"\n', "[stf] unknown key 'tokn' (did you mean 'token'?)"),
    ('[stf]\nurl = 3\n', "[stf] url must be a string, not an integer (3)"),
])
def test_wrong_entries_say_what_is_wrong_and_where(elsewhere, body, words):
    Path("devices.toml").write_text(body)
    with pytest.raises(ConfigError) as error:
        load_inventory()
    message = str(error.value)
    assert words in message and message.startswith(str(Path.cwd() / "devices.toml")) and "\n" not in message
    assert error.value.exit_status == 2


def test_the_stf_table_and_groups_are_read(elsewhere):
    Path("devices.toml").write_text('[devices.s6]\naddress = "127.0.0.1:5555"\n[groups]\nlab = ["s6", "s6", "local"]\n'
                                    '[stf]\nurl = "https://stf.lab"\n')
    inventory = read_inventory()
    assert inventory.stf == {"url": "https://stf.lab"} and inventory.groups == {"lab": ("s6", "local")}


@dataclass(frozen=True)
class Settings:
    name: str
    mode: Literal["a", "b"] = "a"
    ratio: float = 1.0
    where: Optional[Path] = None
    count: Optional[Annotated[int, at_least(2), lambda n: n * 10]] = None


def test_the_loader_reads_the_dataclass_annotations():
    loaded = load_table(Settings, {"mode": "b", "ratio": 2, "where": "x/y", "count": 3}, base=Path("/etc"), name="n")
    assert loaded == Settings("n", "b", 2.0, Path("/etc/x/y"), 30) and isinstance(loaded.ratio, float)
    assert load_table(Settings, {"where": "/abs"}, base=Path("/etc"), name="n").where == Path("/abs")
    assert load_table(Settings, {}, name="n") == Settings("n")
    with pytest.raises(UnknownKeyError, match="unknown key 'name'; keys: count, mode, ratio, where$"):
        load_table(Settings, {"name": "m"}, name="n")  # given by the caller, not by the file
    with pytest.raises(FieldError, match="count must be at least 2"):
        load_table(Settings, {"count": 1}, name="n")
    with pytest.raises(FieldError, match=r"mode must be one of a, b, not a boolean \(true\)"):
        load_table(Settings, {"mode": True}, name="n")


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
