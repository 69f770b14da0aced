"""The device layer's parsers and small rules, on text and numbers (no phone needed)."""

import os
import time

import pytest

from rebirth.contract import CoreState
from rebirth.devices import phonestate
from rebirth.devices.adb import AdbDevice, PhoneRunner, RunDeadline, _safe_name
from rebirth.devices.emulator.auth import PublicKey
from rebirth.devices.inventory import DeviceConfig
from rebirth.devices.retry import Backoff, Retries, RetryError, retry
from rebirth.devices.transport import ExitMarker, byte_sum, parse_address


def test_exit_marker_finds_the_code_even_when_the_command_exits_itself():
    marker = ExitMarker()
    wrapped = marker.wrap("echo hi; exit 7")
    assert wrapped.startswith("( echo hi; exit 7\n)")
    code, output = marker.split(f"hi\n\n{marker.marker}7\n")
    assert (code, output) == (7, "hi\n")
    assert marker.split("no marker here") == (None, "no marker here")
    # Output without a final newline keeps its last line whole.
    assert marker.split(f"partial\n{marker.marker}0\n") == (0, "partial")


def test_a_marker_printed_by_the_command_itself_does_not_fool_the_parser():
    marker = ExitMarker()
    assert marker.split(f"__rebirth_rc_00000000=3\n\n{marker.marker}0\n")[0] == 0
    assert ExitMarker().marker != marker.marker


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:5555", ("127.0.0.1", 5555)), ("phone.lan", ("phone.lan", 5555)),
    ("[::1]:6000", ("::1", 6000)), ("farm.example.com:40123", ("farm.example.com", 40123))])
def test_addresses(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1:0", "127.0.0.1:99999", "host:port", ":5555"])
def test_bad_addresses(text):
    with pytest.raises(ValueError):
        parse_address(text)


def test_fast_checksum_equals_adb_shells_own():
    import importlib

    import adb_shell.adb_message as message

    original = importlib.reload(message).checksum  # the library's pure-Python sum, before any replacement
    for data in (b"", b"\x01", bytes(range(256)) * 300, os.urandom(1 << 20), bytearray(b"\xff" * 70000)):
        assert byte_sum(data) == original(data)
    assert byte_sum("CNXN") == original("CNXN")


SNAPSHOT = """cpu 0 1500000 600000 schedutil
cpu 1 1500000 - schedutil
cpu 10 2850000 2850000 performance
cpu 4 2100000 2100000 schedutil
zone 0 41000 cpu-big
zone 1 - battery
zone 2 -273000 bogus
zone 3 38 tsens_tz_sensor1
"""


def test_snapshot_of_clocks_and_temperatures():
    snapshot = phonestate.parse_snapshot(SNAPSHOT)
    assert [c.index for c in snapshot.cores] == [0, 1, 4, 10]
    assert snapshot.cores[1] == CoreState(1, 1500000, None, "schedutil")
    assert [z.temperature_c for z in snapshot.zones] == [41.0, None, None, 38.0]
    assert snapshot.state().temperature_c == 41.0


def test_big_core_mask_picks_the_fastest_cores():
    cores = tuple(CoreState(i, f) for i, f in enumerate((1803000,) * 4 + (2348000,) * 2 + (2850000,) * 2))
    assert phonestate.big_core_mask(cores) == "c0"
    assert phonestate.mask_cores("c0") == (6, 7)
    assert phonestate.big_core_mask((CoreState(0), CoreState(1))) is None


def test_props_and_battery():
    props = phonestate.parse_props("[ro.product.model]: [SM-G920F]\n[ro.empty]: []\ngarbage\n")
    assert props == {"ro.product.model": "SM-G920F", "ro.empty": ""}
    battery = phonestate.parse_battery("Current Battery Service state:\n  AC powered: false\n  USB powered: true\n"
                                       "  level: 55\n  temperature: 312\n  status: 3\n")
    assert (battery.level, battery.temperature_c, battery.status, battery.powered) == (55, 31.2, "discharging",
                                                                                       "USB")


def test_run_deadline_follows_the_runs_it_sees(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    deadline = RunDeadline(executions=10, model_bytes=50 << 20, per_execution_s=30.0, margin_s=30.0)
    assert deadline.remaining() == pytest.approx(30 + 60 + 5 + 300)
    now[0] += 2.0
    deadline.seen(1, took_ms=500.0)   # 9 runs left at 4 x 0.5 s each, plus the margin
    assert deadline.remaining() == pytest.approx(30 + 18)
    deadline.seen(2, took_ms=100.0)   # the slowest run so far still sets the pace
    assert deadline.remaining() == pytest.approx(30 + 16)


def test_run_command_quotes_every_argument():
    device = AdbDevice(DeviceConfig("s6", address="127.0.0.1:1"), transport=object())
    binary = PhoneRunner(("/data/local/tmp/rebirth/bin/executor_runner",), "", "external", None)
    command = device.run_command(binary, "/data/x/m $(reboot).pte", "/data/local/tmp/rebirth/runs/r1", 23, "f0", 4)
    assert command == ("taskset f0 /data/local/tmp/rebirth/bin/executor_runner --model_path "
                       "'/data/x/m $(reboot).pte' --num_executions 23 --etdump_path "
                       "/data/local/tmp/rebirth/runs/r1/model.etdp --cpu_threads 4")
    assert "--warmup" not in command  # upstream's runner has no such flag: warm-up runs are dropped afterwards
    bundle = PhoneRunner(("sh", "/data/my dir/rebirth-arm64-v8a/executor_runner"), "", "native", None)
    assert device.run_command(bundle, "/m.pte", "/r", 1, None, None, etdump=False) == \
        "sh '/data/my dir/rebirth-arm64-v8a/executor_runner' --model_path /m.pte --num_executions 1"


def test_model_names_on_the_phone_are_tame():
    assert _safe_name("my model;rm -rf.pte") == "my_model_rm_-rf.pte"
    assert _safe_name("..") == "model.pte"


def test_signature_check_of_the_emulators_auth():
    import base64
    import tempfile
    from pathlib import Path

    from adb_shell.auth.keygen import encode_pubkey, keygen
    from adb_shell.auth.sign_pythonrsa import PythonRSASigner

    from rebirth.devices.emulator.auth import parse_key

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "adbkey"
        keygen(str(path))
        signer = PythonRSASigner(path.with_suffix(".pub").read_text(), path.read_text())
        key = parse_key(path.with_suffix(".pub").read_text())
        assert parse_key(base64.b64encode(encode_pubkey(str(path))).decode()).modulus == key.modulus
    token = os.urandom(20)
    signature = signer.Sign(token)
    assert key.verify(token, signature)
    assert not key.verify(os.urandom(20), signature)
    assert not key.verify(token, signature[:-1] + bytes([signature[-1] ^ 1]))
    assert not PublicKey(key.modulus + 2, key.exponent).verify(token, signature)
    with pytest.raises(ValueError):
        parse_key("bm90IGEga2V5 user@host")


class FakeClock:
    """Time that passes only when the code under test sleeps, or an attempt takes ``attempt_s``."""

    def __init__(self, attempt_s: float = 0.0):
        self.now, self.attempt_s, self.waits = 0.0, attempt_s, []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def failing(self, error: Exception, times: int = 1_000):
        calls = []

        def action():
            calls.append(self.now)
            self.now += self.attempt_s
            if len(calls) <= times:
                raise error
            return "done"

        return action, calls


def test_retry_waits_longer_each_time_with_jitter_and_stops_at_its_attempts():
    clock = FakeClock()
    action, calls = clock.failing(ConnectionRefusedError(111, "Connection refused"))
    with pytest.raises(RetryError) as gave_up:
        retry(action, lambda error: True, Backoff(attempts=5, total_s=100), sleep=clock.sleep, clock=lambda: clock.now)
    assert len(calls) == 5 and gave_up.value.attempts == 5 and isinstance(gave_up.value.last, ConnectionRefusedError)
    steps = [0.25, 0.5, 1.0, 2.0]
    assert all(step / 2 <= wait <= step for wait, step in zip(clock.waits, steps, strict=True)), clock.waits
    assert gave_up.value.tries == f"5 attempts in {sum(clock.waits):.1f} s"
    assert Backoff().delay(30, draw=lambda: 1.0) == Backoff().cap_s


def test_retry_is_bounded_by_total_time_and_returns_once_an_attempt_works():
    clock = FakeClock(attempt_s=3.0)
    action, calls = clock.failing(TimeoutError("timed out"))
    with pytest.raises(RetryError) as gave_up:
        retry(action, lambda error: True, Backoff(attempts=100, total_s=10.0), sleep=clock.sleep,
              clock=lambda: clock.now)
    assert calls[-1] <= 10.0 and 2 <= gave_up.value.attempts <= 4
    clock = FakeClock()
    action, calls = clock.failing(ConnectionResetError(), times=2)
    assert retry(action, lambda error: True, sleep=clock.sleep, clock=lambda: clock.now) == "done"
    assert len(calls) == 3


def test_what_cannot_get_better_is_raised_at_once():
    clock = FakeClock()
    action, calls = clock.failing(PermissionError("refused"))
    with pytest.raises(PermissionError):
        retry(action, lambda error: isinstance(error, ConnectionError), sleep=clock.sleep, clock=lambda: clock.now)
    assert len(calls) == 1 and clock.waits == []


def test_which_connect_failures_are_tried_again():
    import socket

    from adb_shell import exceptions as ex

    from rebirth.devices.transport import NotAuthorizedError, TransportError, _server_transient, _transient

    for error in (ConnectionRefusedError(), ConnectionResetError(), TimeoutError(), ex.TcpTimeoutException("t"),
                  ex.AdbConnectionError("127.0.0.1:5555 closed the connection")):
        assert _transient(error), error
    for error in (socket.gaierror(-2, "Name or service not known"), ex.DeviceAuthError("no"),
                  ex.InvalidResponseError("bad"), NotAuthorizedError("key"), ValueError()):
        assert not _transient(error), error
    for said in ("device offline", "device still authorizing", "device still connecting", "closed"):
        assert _server_transient(TransportError(said)), said
    for said in ("device 'nope:1' not found", "no devices/emulators found", "closed the file"):
        assert not _server_transient(TransportError(said)), said
    assert not _server_transient(NotAuthorizedError("device unauthorized"))


def test_a_transport_that_just_gave_up_tries_once_more_only():
    retries = Retries(Backoff(attempts=3, total_s=5.0, first_s=0.01))
    tried = []

    def refused():
        tried.append(1)
        raise ConnectionRefusedError()

    with pytest.raises(RetryError):
        retries(refused, lambda error: True, within_s=30)
    assert len(tried) == 3
    with pytest.raises(RetryError) as again:
        retries(refused, lambda error: True, within_s=30)  # cleaning up after that failure: no second round
    assert len(tried) == 4 and again.value.attempts == 1
