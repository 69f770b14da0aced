"""Phones leased from a DeviceFarmer STF server (its REST API, ``/api/v1``, as STF 3.7 publishes it).

A farm run on STF selects free phones by STF's own device fields (``sdk>=28,abi=arm64-v8a``), leases
them (``POST /user/devices`` with a lease timeout), asks STF for remote connect (``POST
/user/devices/{serial}/remoteConnect``, which answers with a ``host:port`` that adb connects to, as
to any network phone), and always gives them back (``DELETE .../remoteConnect``, ``DELETE
/user/devices/{serial}``): when the run ends, fails or is interrupted. A lease that outlives rebirth
(SIGKILL, a power cut) is written down in a ledger in rebirth's cache with the process that holds it;
the next rebirth that talks to that server releases the leases of processes that are gone, and STF's
own lease timeout is the backstop when there is no next run.

The access token comes from ``$STF_TOKEN`` (or ``token`` under ``[stf]`` in devices.toml) and is only
ever sent in the ``Authorization: Bearer`` header: never printed, never in an error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import operator
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from rebirth.contract.cache import cache_root
from rebirth.contract.errors import DeviceError, InputError
from rebirth.devices.retry import BACKOFF, Backoff, Retries, RetryError

TOKEN_ENV = "STF_TOKEN"
FIELDS = ("serial", "present", "ready", "using", "owner", "model", "manufacturer", "marketName", "sdk", "abi",
          "version", "product", "platform")
"""The device fields rebirth asks STF for (selection may name any of them)."""
LEASE_MINUTES = 30
"""STF's lease timeout rebirth asks for: a phone whose lease rebirth could not give back is free after it."""
TIMEOUT_S = 30.0
"""One REST request's timeout (STF itself answers a lease within 5 s or says 504)."""

Say = Callable[[str], None]


class StfAuthError(InputError):
    """STF refused the access token (expired, revoked or mistyped)."""


@dataclass(frozen=True)
class StfServer:
    """Where STF is and the token to use; ``repr`` never shows the token."""

    url: str
    token: str = field(repr=False)

    @property
    def api(self) -> str:
        return self.url.rstrip("/") + "/api/v1"


def stf_server(url: Optional[str], config: Optional[Mapping[str, str]] = None,
               environ: Optional[Mapping[str, str]] = None) -> StfServer:
    """The STF server of ``--stf URL`` (else ``url`` under ``[stf]`` in devices.toml) and its token
    (``$STF_TOKEN``, else ``token`` under ``[stf]``).

    Raises:
        InputError: no URL, a URL that is not http(s), or no token.
    """
    settings: Mapping[str, str] = config or {}
    variables: Mapping[str, str] = os.environ if environ is None else environ
    url = url or settings.get("url")
    if not url:
        raise InputError("no STF server: pass --stf URL or set url under [stf] in devices.toml")
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InputError(f"--stf {url}: expected the STF server's address, such as https://stf.example.com")
    token = variables.get(TOKEN_ENV) or settings.get("token")
    if not token:
        raise InputError(f"no STF access token: set ${TOKEN_ENV} to a token made in STF's Settings > Keys "
                         "(or token under [stf] in devices.toml)")
    return StfServer(url.rstrip("/"), str(token))


# --- selection --------------------------------------------------------------------------------------

_CONDITION = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_.]*)\s*(>=|<=|!=|=|>|<)\s*([^<>=!\s].*?)?\s*$")
_OPERATORS = {"=": operator.eq, "!=": operator.ne, ">=": operator.ge, "<=": operator.le, ">": operator.gt,
              "<": operator.lt}


@dataclass(frozen=True)
class Condition:
    key: str
    op: str
    value: str

    def holds(self, device: dict[str, Any]) -> bool:
        """Whether ``device`` (STF's fields) meets this condition; numbers compare as numbers (``sdk>=28``),
        text case-insensitively; a field the device lacks meets no condition but ``!=``."""
        found = device.get(self.key)
        if found is None or isinstance(found, (dict, list)):
            return self.op == "!="
        left, right = _comparable(str(found)), _comparable(self.value)
        if type(left) is not type(right):
            left, right = str(found).lower(), self.value.lower()
        return _OPERATORS[self.op](left, right)

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value}"


def _comparable(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text.lower()


def parse_selection(text: Optional[str]) -> tuple[Condition, ...]:
    """``sdk>=28,abi=arm64-v8a,model=SM-G920F`` as conditions that must all hold (empty: any phone).

    Raises:
        InputError: a condition that is not FIELD OP VALUE with OP one of = != >= <= > <.
    """
    conditions = []
    for part in (text or "").split(","):
        if not part.strip():
            continue
        match = _CONDITION.match(part)
        if not match or not match.group(3):
            # A bare field name is what the shell leaves of an unquoted sdk>=28 (it took '>' as a redirection).
            hint = (": quote the selection, as in --stf-select 'sdk>=28', or the shell takes > and < as "
                    "redirections" if re.fullmatch(r"\s*\w+\s*", part) else ", as in 'sdk>=28,abi=arm64-v8a'")
            raise InputError(f"--stf-select: {part.strip()!r} is not FIELD OP VALUE (OP one of = != >= <= > <){hint}")
        conditions.append(Condition(*match.groups()))
    return tuple(conditions)


# --- the REST client ----------------------------------------------------------------------------------

class StfClient:
    """The few calls of STF's API that leasing needs.

    A call that STF (or the proxy before it) could not take is made again with backoff: a connection
    refused, HTTP 429 and 503, and for the calls that may be repeated safely (GET, DELETE) also a
    connection reset or timed out and HTTP 502 and 504. A POST that may have reached STF is not sent
    twice: a lease taken twice would be refused the second time and never given back. Right after
    giving up on STF, each call is tried once (``Retries``): giving N leases back to a server that is
    gone takes seconds, not N rounds of backoff.
    """

    def __init__(self, server: StfServer, timeout_s: float = TIMEOUT_S, backoff: Backoff = BACKOFF):
        self.server, self.timeout_s = server, timeout_s
        self.retries = Retries(backoff)

    def call(self, method: str, path: str, body: Optional[dict] = None,
             query: Optional[dict[str, str]] = None) -> tuple[int, dict[str, Any]]:
        """``(HTTP status, JSON body)`` of one request; a refused token raises, other HTTP errors return.

        Raises:
            StfAuthError: HTTP 401.
            DeviceError: the server cannot be reached, does not answer JSON, or is still busy after the
                last attempt.
        """
        url = self.server.api + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Bearer {self.server.token}", "Accept": "application/json",
            **({"Content-Type": "application/json"} if data is not None else {})})
        status, raw = self._send(request, path)
        try:
            answer = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            raise DeviceError(f"STF at {self.server.url} answered {method} {path} with HTTP {status} and no JSON "
                              "(is the URL the STF server's?)", device="stf", step="lease") from None
        if status == 401:
            raise StfAuthError(f"STF at {self.server.url} refused the access token ({_said(answer)}): make a new "
                               f"one in STF's Settings > Keys and set ${TOKEN_ENV}", device="stf", step="lease")
        return status, answer if isinstance(answer, dict) else {}

    def _send(self, request: urllib.request.Request, path: str) -> tuple[int, bytes]:
        """``(HTTP status, body)``, tried again as the class says.

        Raises:
            DeviceError: the server cannot be reached, or is still busy after the last attempt.
        """
        method = request.get_method()
        try:
            return self.retries(lambda: self._send_once(request), functools.partial(_transient, method),
                                within_s=self.retries.backoff.total_s)
        except _BusyError as busy:  # not tried again (a POST answered 502 or 504): the caller reads the answer
            return busy.status, busy.raw
        except RetryError as failed:
            raise self._failure(method, path, failed.last, f" after {failed.tries}") from None
        except (urllib.error.URLError, OSError) as error:
            raise self._failure(method, path, error) from None

    def _failure(self, method: str, path: str, error: Exception, tries: str = "") -> DeviceError:
        if isinstance(error, _BusyError):
            return DeviceError(f"STF at {self.server.url} still answered {method} {path} with HTTP "
                               f"{error.status}{tries}", device="stf", step="lease")
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        return DeviceError(f"STF at {self.server.url} cannot be reached{tries} ({reason})", device="stf",
                           step="lease")

    def _send_once(self, request: urllib.request.Request) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            if error.code in BUSY:
                raise _BusyError(error.code, error.read()) from None
            return error.code, error.read()

    def devices(self) -> list[dict[str, Any]]:
        status, answer = self.call("GET", "/devices", query={"fields": ",".join(FIELDS)})
        if status != 200:
            raise DeviceError(f"STF at {self.server.url} did not list its devices (HTTP {status}: {_said(answer)})",
                              device="stf", step="lease")
        return [device for device in answer.get("devices", []) if isinstance(device, dict)]

    def lease(self, serial: str, minutes: float) -> tuple[bool, str]:
        """Take ``serial`` for this token's user, for at most ``minutes`` idle; ``(taken, why not)``."""
        status, answer = self.call("POST", "/user/devices", {"serial": serial, "timeout": int(minutes * 60_000)})
        return status == 200 and answer.get("success", True) is not False, f"HTTP {status}: {_said(answer)}"

    def connect(self, serial: str) -> str:
        """The ``host:port`` adb reaches the leased phone at.

        Raises:
            DeviceError: STF did not open remote connect.
        """
        status, answer = self.call("POST", f"/user/devices/{urllib.parse.quote(serial, safe='')}/remoteConnect")
        address = answer.get("remoteConnectUrl")
        if status != 200 or not isinstance(address, str) or not address:
            raise DeviceError(f"STF did not open remote connect to {serial} (HTTP {status}: {_said(answer)})",
                              device=serial, step="lease")
        return address

    def release(self, serial: str) -> Optional[str]:
        """Close remote connect and give ``serial`` back; None when it is back (or was already), else why not."""
        quoted = urllib.parse.quote(serial, safe="")
        with contextlib.suppress(DeviceError):
            self.call("DELETE", f"/user/devices/{quoted}/remoteConnect")
        status, answer = self.call("DELETE", f"/user/devices/{quoted}")
        if status in (200, 404) or (status == 403 and "not owned" in _said(answer).lower()):
            return None  # released now, gone, or no longer ours (the lease timed out)
        return f"HTTP {status}: {_said(answer)}"


BUSY = (429, 502, 503, 504)
"""Answers that say STF (or its proxy) did not get to the request, or may not have: tried again."""
SAFE_TO_REPEAT = ("GET", "HEAD", "PUT", "DELETE")


class _BusyError(Exception):
    def __init__(self, status: int, raw: bytes):
        super().__init__(f"HTTP {status}")
        self.status, self.raw = status, raw


def _transient(method: str, error: Exception) -> bool:
    """Whether ``method`` may be sent again after ``error``: always when it cannot have reached STF (refused,
    429, 503), otherwise only if repeating it is harmless. An unknown host name or a refused token never."""
    if isinstance(error, _BusyError):
        return error.status in (429, 503) or method in SAFE_TO_REPEAT
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, ConnectionRefusedError):
        return True
    return method in SAFE_TO_REPEAT and isinstance(reason, (ConnectionError, TimeoutError))


def _said(answer: dict[str, Any]) -> str:
    """What STF said: its ``description`` (or ``message``), without anything that could be a token."""
    text = answer.get("description") or answer.get("message") or "no description"
    return " ".join(str(text).split())[:200]


# --- the ledger of leases -------------------------------------------------------------------------------

def ledger_path() -> Path:
    return cache_root() / "stf-leases.json"


@contextlib.contextmanager
def _ledger() -> Iterator[list[dict[str, Any]]]:
    """The ledger's entries, locked against other rebirth processes; changes are written back."""
    path = ledger_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            entries = json.loads(path.read_text()) if path.is_file() else []
        except (OSError, json.JSONDecodeError):
            entries = []
        entries = [entry for entry in entries if isinstance(entry, dict)]
        yield entries
        staged = path.with_suffix(".tmp")
        staged.write_text(json.dumps(entries, indent=1))
        os.replace(staged, path)


def _alive(pid: int, started: float) -> bool:
    """Whether process ``pid``, started at ``started`` (epoch seconds), still runs."""
    import psutil

    try:
        return abs(psutil.Process(pid).create_time() - started) < 2.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _me() -> tuple[int, float]:
    import psutil

    return os.getpid(), psutil.Process().create_time()


def reap_stale(client: StfClient, say: Say) -> list[str]:
    """Release the leases on this server of rebirth processes that are gone; the serials released."""
    released = []
    with _ledger() as entries:
        for entry in list(entries):
            if entry.get("url") != client.server.url or _alive(int(entry.get("pid", 0)), entry.get("started", 0)):
                continue
            serial = str(entry.get("serial"))
            problem = client.release(serial)
            if problem is None:
                entries.remove(entry)
                released.append(serial)
                say(f"released {serial}, leased by rebirth process {entry.get('pid')} that is gone")
            else:
                say(f"could not release {serial}, leased by rebirth process {entry.get('pid')} ({problem})")
    return released


def _note(server: StfServer, serial: str) -> None:
    pid, started = _me()
    with _ledger() as entries:
        entries.append({"url": server.url, "serial": serial, "pid": pid, "started": started, "at": time.time()})


def _forget(server: StfServer, serial: str) -> None:
    pid, _ = _me()
    with _ledger() as entries:
        entries[:] = [entry for entry in entries
                      if not (entry.get("url") == server.url and entry.get("serial") == serial
                              and entry.get("pid") == pid)]


# --- leasing ------------------------------------------------------------------------------------------

@dataclass
class Lease:
    serial: str
    address: str
    model: str = ""


def describe(device: dict[str, Any]) -> str:
    name = device.get("marketName") or device.get("model") or "?"
    return f"{device.get('serial')} ({name}, sdk {device.get('sdk', '?')}, {device.get('abi', '?')})"


@contextlib.contextmanager
def leased(server: StfServer, conditions: tuple[Condition, ...], count: int, say: Say,
           minutes: float = LEASE_MINUTES, client: Optional[StfClient] = None) -> Iterator[list[Lease]]:
    """Lease up to ``count`` free phones meeting every condition and yield them, remote connect open;
    every lease is given back when the block ends, however it ends.

    Raises:
        StfAuthError: the token was refused (nothing leased).
        DeviceError: STF cannot be reached, or no phone that meets the conditions is free.
    """
    client = client or StfClient(server)
    reap_stale(client, say)
    devices = client.devices()
    matching = [device for device in devices if all(condition.holds(device) for condition in conditions)]
    wanted = ",".join(map(str, conditions)) or "any phone"
    held: list[Lease] = []
    try:
        for device in matching:
            if len(held) >= count:
                break
            serial = str(device.get("serial"))
            if not device.get("present") or not device.get("ready"):
                say(f"skipped {describe(device)}: not connected to STF right now")
                continue
            if device.get("owner") or device.get("using"):
                say(f"skipped {describe(device)}: someone else holds it")
                continue
            # In the ledger and in ``held`` before asking: a kill or Ctrl-C between STF's yes and the next
            # line would otherwise leave a lease nobody gives back. Releasing a phone that was never
            # leased is harmless (STF says it is not ours, which counts as given back).
            lease = Lease(serial, "", str(device.get("model") or ""))
            _note(server, serial)
            held.append(lease)
            taken, why = client.lease(serial, minutes)
            if not taken:
                held.pop()
                _forget(server, serial)
                say(f"skipped {describe(device)}: STF would not lease it ({why})")
                continue
            lease.address = client.connect(serial)
            say(f"leased {describe(device)} at {lease.address}, for at most {minutes:g} idle minutes")
        if not held:
            raise DeviceError(f"no phone on STF at {server.url} meets {wanted} and is free "
                              f"({len(matching)} of {len(devices)} meet it)", device="stf", step="lease")
        if len(held) < count:
            say(f"leased {len(held)} of the {count} phones asked for: no more meet {wanted} and are free")
        yield held
    finally:
        for lease in held:
            try:
                problem = client.release(lease.serial)
            except DeviceError as error:  # STF went away: the ledger and the lease timeout remain
                problem = str(error)
            if problem is None:
                _forget(server, lease.serial)
            else:
                say(f"could not give {lease.serial} back to STF ({problem}); its lease ends by itself after "
                    f"{minutes:g} idle minutes, or the next rebirth run releases it")
