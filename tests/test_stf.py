"""Phones leased from DeviceFarmer STF: selected by STF's fields, leased, profiled, stored and always given
back (run over, phone dead, token wrong, Ctrl-C; after SIGKILL, by the next run). The server is a stand-in
checked request by request against STF's own API description (``tests/stf.py``)."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rebirth.contract.errors import DeviceError, InputError
from rebirth.devices.emulator import PHONES, EmulatedPhone, SleepingRunner
from rebirth.devices.retry import Backoff
from rebirth.devices.stf import StfAuthError, StfClient, StfServer, leased, parse_selection, stf_server
from rebirth.results import store
from tests.phones import free_port
from tests.stf import StfDevice, StfStandIn, stf_api_description
from tests.test_farm import ITERATIONS, WARMUP, rebirth, recordings  # noqa: F401  (recordings is a fixture)

TOKEN, OTHER = "0123456789abcdef-token", "someone-elses-token"


@pytest.fixture(scope="session")
def api_description():
    try:
        return stf_api_description()
    except RuntimeError as error:
        pytest.fail(str(error))


@pytest.fixture
def farm(tmp_path, recordings, api_description, monkeypatch):  # noqa: F811
    """An STF stand-in with four phones, each an emulated phone running the sleeping runner: 28 (arm64,
    free), 30 (arm64, held by someone else), 29 (arm64, free), x86 (x86_64, free)."""
    phones = {}
    for serial in ("s28", "s30", "s29", "x86"):
        phones[serial] = EmulatedPhone(tmp_path / serial, PHONES["galaxy-s6"],
                                       runner=SleepingRunner(20.0, recordings)).start()
    stf = StfStandIn(api_description, tokens={TOKEN: "ci@example.com", OTHER: "other@example.com"})
    stf.devices = {
        "s28": StfDevice("s28", phones["s28"].address, sdk="28"),
        "s30": StfDevice("s30", phones["s30"].address, sdk="30", owner={"email": "other@example.com"}),
        "s29": StfDevice("s29", phones["s29"].address, sdk="29"),
        "x86": StfDevice("x86", phones["x86"].address, sdk="30", abi="x86_64", model="Pixel"),
    }
    stf.start()
    monkeypatch.setenv("STF_TOKEN", TOKEN)
    monkeypatch.setenv("REBIRTH_CACHE", str(tmp_path / "cache"))  # the lease ledger, isolated
    monkeypatch.chdir(tmp_path)
    yield stf, phones
    stf.stop()
    for phone in phones.values():
        phone.stop()


def _run(stf, model, *extra, results=None):
    return rebirth("farm", "run", model, "--stf", stf.url, "--warmup", WARMUP, "--iterations", ITERATIONS,
                   "--store", results or Path("results"), "-q", *extra)


def test_a_farm_run_leases_matching_free_phones_profiles_them_and_gives_them_back(farm, firenet_ptes, capsys):
    stf, phones = farm
    code = _run(stf, firenet_ptes["portable"], "--stf-select", "sdk>=28,abi=arm64-v8a", "--count", "3")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "skipped s30 (Galaxy SM-G920F, sdk 30, arm64-v8a): someone else holds it" in err
    assert "leased 2 of the 3 phones asked for" in err
    runs = store.list_runs(Path("results"))
    assert sorted(run.profile.device.name for run in runs) == sorted([phones["s28"].address, phones["s29"].address])
    assert stf.leased() == ["s30"]  # ours given back; the other user's untouched
    assert stf.violations == []
    calls = [(method, path) for method, path, _ in stf.requests]
    for serial in ("s28", "s29"):
        assert calls.index(("POST", f"/api/v1/user/devices/{serial}/remoteConnect")) < \
            calls.index(("DELETE", f"/api/v1/user/devices/{serial}"))
    assert not any(serial in path for _, path in calls for serial in ("x86", "s30"))  # never asked for
    leases = [body for method, path, body in stf.requests if (method, path) == ("POST", "/api/v1/user/devices")]
    assert all(isinstance(body["timeout"], int) and body["timeout"] > 0 for body in leases)  # STF's backstop
    assert TOKEN not in out + err


def test_a_wrong_token_is_one_line_exit_2_and_nothing_is_leased(farm, firenet_ptes, capsys, monkeypatch):
    stf, _ = farm
    monkeypatch.setenv("STF_TOKEN", "expired-token-value")
    assert _run(stf, firenet_ptes["portable"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused the access token (Bad Credentials)" in err and "STF_TOKEN" in err
    assert "expired-token-value" not in err and stf.leased() == ["s30"] and stf.violations == []


def test_no_free_phone_that_meets_the_selection_is_exit_3(farm, firenet_ptes, capsys):
    stf, _ = farm
    assert _run(stf, firenet_ptes["portable"], "--stf-select", "sdk>=30,abi=arm64-v8a") == 3
    err = capsys.readouterr().err
    assert "no phone on STF" in err and "meets sdk>=30,abi=arm64-v8a and is free (1 of 4 meet it)" in err
    assert stf.leased() == ["s30"]


@pytest.mark.slow
def test_a_phone_that_dies_mid_run_fails_alone_and_every_lease_is_given_back(farm, firenet_ptes, capsys):
    stf, phones = farm
    dying = phones["s29"]
    dying.on_request = lambda kind, path: kind == "RECV" and dying.stop()
    code = _run(stf, firenet_ptes["portable"], "--stf-select", "abi=arm64-v8a", "--count", "2")
    err = capsys.readouterr().err
    assert code == 3 and f"{phones['s29'].address} failed" in err
    assert len(store.list_runs(Path("results"))) == 1
    assert stf.leased() == ["s30"] and stf.violations == []


def _rebirth_process(stf, model, tmp_path, *extra) -> subprocess.Popen:
    env = dict(os.environ, STF_TOKEN=TOKEN, REBIRTH_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "rebirth", "farm", "run", str(model), "--stf", stf.url, "--warmup", "1",
               "--iterations", "200", "--store", str(tmp_path / "results"), "-q", *extra]
    return subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_until_running(stf, phones, serials, process, seconds=120.0):
    """Until every phone of ``serials`` is leased and has the model (its runner starts right after), and a
    second more: the run is under way, nowhere near its end (200 executions of 20 ms)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if all(serial in stf.leased() for serial in serials) and all(
                any(kind == "SEND" and ".pte" in path for kind, path in phones[serial].requests) for serial in serials):
            time.sleep(1.0)
            return
        time.sleep(0.2)
    raise AssertionError("the run did not start on the leased phones")


def _running_on_two_phones(stf, phones, model, tmp_path) -> subprocess.Popen:
    """`rebirth farm run` in its own process on the two free arm64 phones, returned mid-run."""
    for phone in phones.values():
        phone.requests = []
        phone.on_request = lambda kind, path, phone=phone: phone.requests.append((kind, path))
    process = _rebirth_process(stf, model, tmp_path, "--stf-select", "abi=arm64-v8a", "--count", "2")
    _wait_until_running(stf, phones, ["s28", "s29"], process)
    return process


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_gives_every_lease_back(farm, firenet_ptes, tmp_path, sig):
    stf, phones = farm
    process = _running_on_two_phones(stf, phones, firenet_ptes["portable"], tmp_path)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert stf.leased() == ["s30"] and stf.violations == [] and "Traceback" not in err


@pytest.mark.slow
def test_after_sigkill_the_next_run_gives_the_orphaned_leases_back(farm, firenet_ptes, tmp_path, capsys):
    stf, phones = farm
    process = _running_on_two_phones(stf, phones, firenet_ptes["portable"], tmp_path)
    process.kill()
    process.wait(timeout=30)
    assert stf.leased() == ["s28", "s29", "s30"]  # nothing could give them back
    code = _run(stf, firenet_ptes["portable"], "--stf-select", "abi=x86_64", results=tmp_path / "again")
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"released s28, leased by rebirth process {process.pid} that is gone" in err
    assert stf.leased() == ["s30"] and stf.violations == []


def test_the_lease_timeout_is_the_backstop_when_no_run_follows(api_description, tmp_path, monkeypatch):
    monkeypatch.setenv("REBIRTH_CACHE", str(tmp_path / "cache"))
    stf = StfStandIn(api_description, tokens={TOKEN: "ci@example.com"},
                     devices={"a": StfDevice("a", "127.0.0.1:1")}).start()
    try:
        server = StfServer(stf.url, TOKEN)
        client = StfClient(server)
        said: list[str] = []
        with pytest.raises(KeyboardInterrupt), leased(server, (), 1, said.append, minutes=0.01, client=client):
            client.release = lambda serial: "HTTP 503: STF is busy"  # giving back fails: only the timeout remains
            raise KeyboardInterrupt
        assert stf.leased() == ["a"] and any("its lease ends by itself after 0.01 idle minutes" in s for s in said)
        time.sleep(0.7)
        assert stf.leased() == [] and stf.violations == []
    finally:
        stf.stop()


@pytest.fixture
def stand_in(api_description):
    """An STF stand-in with two free phones (never connected to: the client's calls are what is tested)."""
    stf = StfStandIn(api_description, tokens={TOKEN: "ci@example.com"},
                     devices={"a": StfDevice("a", "127.0.0.1:1"), "b": StfDevice("b", "127.0.0.1:2")}).start()
    yield stf
    stf.stop()


def test_stf_answering_503_once_is_asked_again(stand_in):
    client = StfClient(StfServer(stand_in.url, TOKEN))
    stand_in.unavailable = 1  # the proxy's HTML page, then STF itself
    assert [device["serial"] for device in client.devices()] == ["a", "b"]
    stand_in.unavailable = 1  # a POST that cannot have reached STF is sent again too
    assert client.lease("a", 1) == (True, "HTTP 200: Device successfully added")
    calls = [(method, path) for method, path, _ in stand_in.requests]
    assert calls == [("GET", "/api/v1/devices")] * 2 + [("POST", "/api/v1/user/devices")] * 2
    assert stand_in.leased() == ["a"] and stand_in.violations == []


def test_stf_busy_for_good_fails_after_a_few_attempts_and_a_bad_token_at_once(stand_in):
    client = StfClient(StfServer(stand_in.url, TOKEN), backoff=Backoff(total_s=2.0))
    stand_in.unavailable = 1000
    started = time.monotonic()
    with pytest.raises(DeviceError) as busy:
        client.devices()
    message = str(busy.value)
    assert re.fullmatch(rf"STF at {stand_in.url} still answered GET /devices with HTTP 503 after [2-6] attempts in "
                        r"\d\.\d s", message), message
    assert int(message.split(" after ")[1].split()[0]) == len(stand_in.requests) and time.monotonic() - started < 20
    stand_in.unavailable, stand_in.requests = 0, []
    with pytest.raises(StfAuthError):
        StfClient(StfServer(stand_in.url, "wrong-token")).devices()
    assert len(stand_in.requests) == 1  # a refused token is not tried again


def test_stf_that_is_not_listening_yet_is_reached_and_one_that_never_listens_is_one_line(api_description):
    port = free_port()
    client = StfClient(StfServer(f"http://127.0.0.1:{port}", TOKEN))
    stf = StfStandIn(api_description, tokens={TOKEN: "ci@example.com"}, devices={"a": StfDevice("a", "127.0.0.1:1")})
    starting = threading.Timer(0.5, lambda: stf.start(port))
    starting.start()
    try:
        assert [device["serial"] for device in client.devices()] == ["a"]
    finally:
        starting.join()
        stf.stop()
    gone = StfClient(StfServer(f"http://127.0.0.1:{free_port()}", TOKEN), backoff=Backoff(total_s=1.0))
    with pytest.raises(DeviceError, match=r"cannot be reached after [2-6] attempts in \d\.\d s \(.*refused"):
        gone.devices()


@pytest.mark.parametrize("text, device, holds", [
    ("sdk>=28", {"sdk": "28"}, True), ("sdk>=28", {"sdk": "9"}, False), ("sdk>28", {"sdk": "100"}, True),
    ("abi=arm64-v8a", {"abi": "ARM64-V8A"}, True), ("model!=Pixel", {"model": "SM-G920F"}, True),
    ("model=SM-G920F", {}, False), ("model!=SM-G920F", {}, True), ("version<10", {"version": "9"}, True),
])
def test_a_selection_compares_numbers_as_numbers_and_text_without_case(text, device, holds):
    assert all(c.holds(device) for c in parse_selection(text)) is holds


@pytest.mark.parametrize("text", ["sdk", "sdk>=", ">=28", "sdk=>28"])
def test_a_bad_selection_is_refused(text):
    with pytest.raises(InputError, match="FIELD OP VALUE") as refused:
        parse_selection(text)
    # 'sdk' is what the shell leaves of an unquoted sdk>=28: the message says to quote it
    assert ("quote the selection" in str(refused.value)) is (text == "sdk")


def test_the_server_and_token_come_from_options_devices_toml_or_the_environment():
    assert stf_server("https://stf.lab/", environ={"STF_TOKEN": "t"}) == StfServer("https://stf.lab", "t")
    assert stf_server(None, {"url": "http://s", "token": "f"}, environ={}).token == "f"
    assert stf_server(None, {"url": "http://s", "token": "f"}, environ={"STF_TOKEN": "e"}).token == "e"
    assert "secret" not in repr(StfServer("https://x", "secret"))
    for url, environ, message in [(None, {"STF_TOKEN": "t"}, "no STF server"),
                                  ("ftp://x", {"STF_TOKEN": "t"}, "address"), ("https://x", {}, "no STF access token")]:
        with pytest.raises(InputError, match=message):
            stf_server(url, environ=environ)


def test_stf_options_without_stf_are_refused(capsys):
    assert rebirth("farm", "run", "m.pte", "--devices", "s6", "--count", "3") == 2
    assert "add --stf URL" in capsys.readouterr().err
