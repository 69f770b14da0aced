"""The emulated phone against Debian's real ``adb`` client, the independent peer."""

import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from rebirth.devices.emulator import PHONES, EmulatedPhone, Sandbox
from rebirth.devices.emulator.phone import host_abi

ADB = shutil.which("adb")
if ADB is None and os.environ.get("CI"):
    raise RuntimeError("CI must install Debian's adb (apt-get install adb): see .ci/run")
pytestmark = pytest.mark.skipif(ADB is None, reason="Debian's adb client is not installed (apt-get install adb)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def phone(tmp_path_factory):
    emulated = EmulatedPhone(tmp_path_factory.mktemp("phone"), PHONES["galaxy-s6"]).start()
    yield emulated
    emulated.stop()


def adb_client(home):
    """The real adb client with a private server and a private HOME (its ~/.android/adbkey)."""
    server_port = str(free_port())
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANDROID_", "ADB_"))}
    env["HOME"] = str(home)

    def run(*args, check=False, timeout=60, text=True):
        return subprocess.run([ADB, "-P", server_port, *args], capture_output=True, text=text, timeout=timeout,
                              check=check, env=env)

    run.port = server_port
    return run


@pytest.fixture(scope="module")
def adb(phone, tmp_path_factory):
    """Run the real adb client against the phone through a private adb server."""
    run = adb_client(tmp_path_factory.mktemp("adb-home"))

    connected = run("connect", phone.address)
    assert "connected to" in connected.stdout, connected.stdout + connected.stderr
    def on_phone(*args, **kw):
        return run("-s", phone.address, *args, **kw)

    on_phone.server = run
    on_phone.raw = lambda *args: run("-s", phone.address, *args, text=False)
    yield on_phone
    run("kill-server")


def test_devices_lists_the_phone_with_its_model(adb, phone):
    listing = adb.server("devices", "-l").stdout
    line = next(line for line in listing.splitlines() if phone.address in line)
    assert "device " in line and "model:SM_G920F" in line and "device:zeroflte" in line


def test_shell_returns_exit_codes_and_separates_stderr(adb):
    done = adb("shell", "echo out; echo err >&2; exit 7")
    assert done.returncode == 7
    assert done.stdout == "out\n" and done.stderr == "err\n"
    assert adb("shell", "true").returncode == 0


def test_getprop_dumpsys_and_sysfs_describe_the_phone(adb):
    assert adb("shell", "getprop ro.product.model").stdout.strip() == "SM-G920F"
    assert adb("shell", "getprop ro.product.cpu.abi").stdout.strip() == host_abi()
    assert adb("shell", "getprop ro.kernel.qemu").stdout.strip() == ""
    assert "level: 87" in adb("shell", "dumpsys battery").stdout
    freqs = adb("shell", "cat /sys/devices/system/cpu/cpu*/cpufreq/cpuinfo_max_freq").stdout.split()
    assert freqs == ["1500000"] * 4 + ["2100000"] * 4
    assert int(adb("shell", "cat /sys/class/thermal/thermal_zone0/temp").stdout) == 35000


def test_push_and_pull_a_large_file_byte_for_byte(adb, tmp_path):
    data = os.urandom(3 << 20) * 7  # 21 MiB
    source, back = tmp_path / "model.pte", tmp_path / "back.pte"
    source.write_bytes(data)
    pushed = adb("push", str(source), "/data/local/tmp/rebirth/run 1/model.pte")
    assert pushed.returncode == 0, pushed.stderr
    assert adb("shell", "stat -c %s '/data/local/tmp/rebirth/run 1/model.pte'").stdout.strip() == str(len(data))
    pulled = adb("pull", "/data/local/tmp/rebirth/run 1/model.pte", str(back))
    assert pulled.returncode == 0, pulled.stderr
    assert back.read_bytes() == data


def test_exec_out_is_binary_safe(adb, tmp_path):
    blob = bytes(range(256)) * 64
    (tmp_path / "blob").write_bytes(blob)
    assert adb("push", str(tmp_path / "blob"), "/data/local/tmp/blob").returncode == 0
    assert adb.raw("exec-out", "cat /data/local/tmp/blob").stdout == blob


def test_pulling_a_missing_file_fails_cleanly(adb, tmp_path):
    done = adb("pull", "/data/local/tmp/does-not-exist", str(tmp_path / "x"))
    assert done.returncode != 0
    assert "does not exist" in done.stdout + done.stderr


def test_the_sandbox_refuses_paths_outside_its_root(tmp_path):
    sandbox = Sandbox(tmp_path / "root", PHONES["pixel-7"])
    sandbox.populate()
    assert sandbox.host_path("/data/../../../etc/passwd") == sandbox.root / "etc/passwd"
    (sandbox.root / "data/local/tmp/escape").symlink_to("/etc")
    with pytest.raises(PermissionError):
        sandbox.host_path("/data/local/tmp/escape/passwd")
    assert sandbox.rewrite("cat /data/x && ls /sys/class") == \
        f"cat {sandbox.root}/data/x && ls {sandbox.root}/sys/class"
    assert sandbox.rewrite("echo foo/data") == "echo foo/data"


def test_rsa_authentication_lets_the_authorized_key_in_and_keeps_others_out(tmp_path):
    """adb signs the phone's token with ~/.android/adbkey; the emulator checks it like adbd."""
    from rebirth.devices.emulator.auth import read_keys

    run = adb_client(tmp_path / "home")
    assert run("start-server").returncode == 0  # generates the client's key pair
    key = tmp_path / "home/.android/adbkey.pub"
    assert key.is_file()
    stranger = adb_client(tmp_path / "stranger")
    assert stranger("start-server").returncode == 0
    phone = EmulatedPhone(tmp_path / "phone", PHONES["pixel-7"], authorized_keys=read_keys([key])).start()
    try:
        for client, expected in ((run, "device"), (stranger, "unauthorized")):
            client("connect", phone.address)
            state = ""
            for _ in range(50):  # the client authenticates in the background
                state = client("-s", phone.address, "get-state").stdout.strip()
                listing = client("devices").stdout
                if expected in listing.split() or state == expected:
                    break
                time.sleep(0.1)
            assert expected in client("devices").stdout.split(), client("devices").stdout
        assert run("-s", phone.address, "shell", "getprop ro.product.model").stdout.strip() == "Pixel 7"
        denied = stranger("-s", phone.address, "shell", "echo should-not-run")
        assert denied.returncode != 0 and "should-not-run" not in denied.stdout
        _an_unauthorized_phone_is_not_asked_again(stranger, phone.address, tmp_path / "stranger")
    finally:
        phone.stop()
        run("kill-server")
        stranger("kill-server")


def _an_unauthorized_phone_is_not_asked_again(client, serial: str, home) -> None:
    """rebirth's adb-server transport, through the ``client``'s server, to a phone that refused its key."""
    from rebirth.devices.transport import AdbServerTransport, NotAuthorizedError

    transport = AdbServerTransport(serial, adb=ADB)
    asked = []
    get_state = transport._get_state
    transport._get_state = lambda timeout_s: (asked.append(timeout_s), get_state(timeout_s))[1]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANDROID_ADB_SERVER_PORT", client.port)
        patch.setenv("HOME", str(home))
        with pytest.raises(NotAuthorizedError) as error:
            transport.shell("echo should-not-run", 10)
    assert len(asked) == 1 and "did not authorize" in str(error.value) and "attempt" not in str(error.value)


def test_an_adb_server_transport_profiles_through_the_real_adb_client(tmp_path, monkeypatch, firenet_ptes):
    """transport = "adb-server": rebirth drives the phone through Debian's adb client and server."""
    from rebirth.devices import list_devices
    from rebirth.devices.adbserver import server_devices
    from rebirth.profiler import ProfileOptions
    from rebirth.usecases.profiling import profile

    phone = EmulatedPhone(tmp_path / "phone", PHONES["pixel-7"]).start()
    run = adb_client(tmp_path / "home")
    server_port = run.port
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", server_port)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    try:
        assert "connected" in run("connect", phone.address).stdout
        listed = server_devices(int(server_port))
        assert [(d.serial, d.state, d.model) for d in listed] == [(phone.address, "device", "Pixel_7")]
        rows = {row.name: row for row in list_devices(timeout_s=2.0)}
        assert rows[phone.address].kind == "adb server" and rows[phone.address].status == "device"
        (tmp_path / "devices.toml").write_text(f'[devices.p7]\ntransport = "adb-server"\nserial = "{phone.address}"\n')
        result = profile(str(firenet_ptes["portable"]), ProfileOptions(device="p7", warmup=0, iterations=2))
        assert result.device.product_model == "Google Pixel 7" and len(result.latency.raw) == 2
        assert result.settings.cpu_affinity == "c0"
        rows = {row.name: row for row in list_devices(timeout_s=2.0)}
        assert rows["p7"].status == "ready" and phone.address not in rows  # listed once, by its name
        phone.stop()
        from rebirth.contract.errors import UnreachableError

        with pytest.raises(UnreachableError) as error:
            profile(str(firenet_ptes["portable"]), ProfileOptions(device="p7", warmup=0, iterations=1))
        # the server sees the phone offline, which may pass: asked again a few times, then one line
        assert "p7 (adb server: " in str(error.value) and "\n" not in str(error.value)
        assert re.search(r"device offline \(after [2-6] attempts in \d+\.\d s\)", str(error.value)), error.value
    finally:
        phone.stop()
        run("kill-server")
