"""How rebirth talks to a phone: one small interface, and adb-shell behind it.

A transport runs a shell command and returns its exit code and output, and pushes and pulls
files. It knows nothing of runs or profiles, and raises ``TransportError`` (or
``NotAuthorizedError``) for anything that goes wrong on the way; ``devices.adb`` turns those
into ``DeviceError`` at its one choke point.

``AdbShellTransport`` speaks ADB itself through adb-shell, over TCP (``host:port``, as
``adb connect`` and remote device farms expose phones) or USB. adb-shell has no shell v2, so
stdout and stderr arrive merged and the exit code comes from a marker appended to the command.
A transport through a running adb server (adbutils, or the ``adb`` client) fits the same
interface where a server already owns the USB phones.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional, Protocol, TypeVar

from rebirth.devices.retry import BACKOFF, Backoff, Retries, RetryError

_T = TypeVar("_T")
LineCallback = Callable[[str], None]
BytesProgress = Callable[[int, int], None]
"""Called as ``progress(done_bytes, total_bytes)``."""

DEFAULT_PORT = 5555
CONNECT_TIMEOUT_S = 10.0


class TransportError(Exception):
    """The phone could not be reached, or stopped answering, or refused an operation."""


class NotAuthorizedError(TransportError):
    """The phone did not accept this computer's ADB key."""


class ShellResult:
    __slots__ = ("exit_code", "output")

    def __init__(self, exit_code: int, output: str):
        self.exit_code, self.output = exit_code, output


class Transport(Protocol):
    """One phone, one connection, made on first use and re-made after a failure."""

    target: str

    def shell(self, command: str, timeout_s: float, on_line: Optional[LineCallback] = None,
              idle_s: Optional[float] = None) -> ShellResult:
        """Run ``command``; ``on_line`` sees each output line as it arrives. ``timeout_s`` bounds the
        whole command, ``idle_s`` (default: ``timeout_s``) a silence."""

    def push(self, local: Path, remote: str, timeout_s: float, progress: Optional[BytesProgress] = None) -> None: ...

    def pull(self, remote: str, local: Path, timeout_s: float, progress: Optional[BytesProgress] = None) -> None: ...

    def close(self) -> None: ...


def parse_address(address: str) -> tuple[str, int]:
    """``host[:port]`` or ``[v6]:port`` -> (host, port); the port defaults to 5555.

    Raises:
        ValueError: the port is not a number between 1 and 65535.
    """
    text = address.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"{address!r} has no host")
    port = int(port_text) if port_text.isdigit() else None
    if port_text and (port is None or not 0 < port < 65536):
        raise ValueError(f"{address!r}: the port must be a number between 1 and 65535")
    return host, port or DEFAULT_PORT


class ExitMarker:
    """Appends ``; echo MARKER$?`` to a command and finds the exit code in its output."""

    def __init__(self):
        self.marker = f"__rebirth_rc_{secrets.token_hex(4)}="

    def wrap(self, command: str) -> str:
        # A subshell, so that a command calling `exit` still reaches the marker.
        return f"( {command}\n); printf '\\n{self.marker}%d\\n' $?"

    def split(self, output: str) -> tuple[Optional[int], str]:
        head, found, tail = output.rpartition("\n" + self.marker)
        if not found:
            return None, output
        code = tail.strip()
        return (int(code) if code.isdigit() else None), head


class _LineSplitter:
    """Feeds complete lines to a callback, holding back what may be the exit marker."""

    def __init__(self, on_line: Optional[LineCallback]):
        self.on_line, self.pending = on_line, ""

    def feed(self, text: str) -> None:
        if not self.on_line:
            return
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.on_line(line + "\n")


class _LazySigner:
    """Loads (or creates) ``~/.android/adbkey`` only when a phone asks for authentication."""

    def __init__(self, key_path: Optional[Path]):
        self.key_path, self._signer = key_path, None

    def _get(self):
        if self._signer is None:
            from rebirth.devices.keys import signer

            self._signer = signer(self.key_path)
        return self._signer

    def Sign(self, data):  # noqa: N802 (adb-shell's names)
        return self._get().Sign(data)

    def GetPublicKey(self):  # noqa: N802
        return self._get().GetPublicKey()


def _eof_aware_tcp():
    """adb-shell's TCP transport, but a closed socket raises at once instead of spinning until a timeout."""
    from adb_shell.exceptions import AdbConnectionError
    from adb_shell.transport.tcp_transport import TcpTransport

    class EofAwareTcpTransport(TcpTransport):
        def connect(self, transport_timeout_s):
            super().connect(transport_timeout_s)
            self._connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def bulk_read(self, numbytes, transport_timeout_s):
            data = super().bulk_read(numbytes, transport_timeout_s)
            if not data:
                raise AdbConnectionError(f"{self._host}:{self._port} closed the connection")
            return data

    return EofAwareTcpTransport


def byte_sum(data) -> int:
    """ADB's data check, the sum of the payload's bytes; numpy makes it ~50x faster than ``sum``."""
    import numpy

    if isinstance(data, str):
        data = data.encode()
    return int(numpy.frombuffer(data, numpy.uint8).sum(dtype=numpy.uint64)) & 0xFFFFFFFF if len(data) else 0


def _use_fast_checksum() -> None:
    """adb-shell sums every payload byte by byte in Python on send and on receive, which caps a push
    near 100 MB/s; the same sum with numpy lifts that cap (see benchmarks/devices_bench.py)."""
    import adb_shell.adb_device
    import adb_shell.adb_message

    adb_shell.adb_message.checksum = byte_sum
    adb_shell.adb_device.checksum = byte_sum


class AdbShellTransport:
    """ADB through adb-shell, over TCP (``address``) or USB (``serial``).

    A connect that is refused, reset or not answered is tried again (``retries``): a phone whose adbd,
    or an STF bridge, is not listening yet is reached once it is. A key the phone refuses is not.
    """

    def __init__(self, address: Optional[str] = None, serial: Optional[str] = None, usb: bool = False,
                 key_path: Optional[Path] = None, auth_timeout_s: float = CONNECT_TIMEOUT_S,
                 backoff: Backoff = BACKOFF):
        _use_fast_checksum()
        self.address, self.serial, self.usb = address, serial, usb
        self.target = (f"USB {serial}" if serial else "USB") if usb else str(address)
        self.signer = _LazySigner(key_path)
        self.auth_timeout_s = auth_timeout_s
        self.retries = Retries(backoff)
        self._device = None

    # -- connection ---------------------------------------------------------------------------
    def _connect(self, timeout_s: float):
        if self._device is not None:
            return self._device
        from adb_shell import exceptions as ex

        try:
            self._device = self.retries(lambda: self._connect_once(timeout_s), _transient, timeout_s)
        except RetryError as failed:
            raise _connect_error(self.target, failed.last, f" after {failed.tries}") from None
        except (OSError, ex.AdbConnectionError, ex.InvalidResponseError, ex.InvalidCommandError,
                ex.InvalidChecksumError) as error:
            raise _connect_error(self.target, error) from None
        return self._device

    def _connect_once(self, timeout_s: float):
        """One connect; a key the phone refused is ``NotAuthorizedError``, anything else adb-shell's own error."""
        from adb_shell import exceptions as ex

        asked = []
        device = self._new_device(timeout_s)
        try:
            device.connect(rsa_keys=[self.signer], transport_timeout_s=min(timeout_s, CONNECT_TIMEOUT_S),
                           auth_timeout_s=self.auth_timeout_s, read_timeout_s=min(timeout_s, CONNECT_TIMEOUT_S),
                           auth_callback=lambda _device: asked.append(True))
        except Exception as error:
            device.close()
            timed_out = isinstance(error, (ex.TcpTimeoutException, ex.AdbTimeoutError))
            if isinstance(error, ex.DeviceAuthError) or (asked and timed_out):
                raise NotAuthorizedError(
                    "the phone did not authorize this computer's ADB key "
                    f"({self._key_shown()}): accept the prompt on the phone, then retry") from None
            raise
        return device

    def _new_device(self, timeout_s: float):
        if self.usb:
            import adb_shell.adb_device as adb_device

            if adb_device.UsbTransport is None:
                raise TransportError("USB needs libusb1: pip install 'adb-shell[usb]' (or use transport = "
                                     "\"adb-server\" where an adb server owns the phone)")
            AdbDeviceUsb = adb_device.AdbDeviceUsb
            try:
                return AdbDeviceUsb(serial=self.serial, default_transport_timeout_s=timeout_s)
            except Exception as error:  # adb-shell raises several kinds for a missing device
                raise TransportError(f"no USB phone {self.serial or ''} ({_reason(error)})") from None
        from adb_shell.adb_device import AdbDevice

        host, port = parse_address(self.address or "")
        return AdbDevice(_eof_aware_tcp()(host, port), default_transport_timeout_s=timeout_s)

    def _key_shown(self) -> str:
        from rebirth.devices.keys import key_path

        path = self.signer.key_path or key_path()
        return f"{path}.pub"

    def close(self) -> None:
        if self._device is not None:
            try:
                self._device.close()
            except Exception:  # closing a broken connection must not hide the first error
                pass
            self._device = None

    def _guard(self, action, timeout_s: float):
        """Run ``action(device)``; any failure closes the connection (it is re-made on next use)."""
        device = self._connect(timeout_s)
        try:
            return action(device)
        except TransportError:
            self.close()
            raise
        except Exception as error:
            self.close()
            if type(error).__module__.startswith("adb_shell") or isinstance(error, OSError):
                raise TransportError(_reason(error)) from None
            raise

    # -- operations ---------------------------------------------------------------------------
    def shell(self, command: str, timeout_s: float, on_line: Optional[LineCallback] = None,
              idle_s: Optional[float] = None) -> ShellResult:
        marker = ExitMarker()
        deadline = time.monotonic() + timeout_s

        def action(device) -> ShellResult:
            chunks: list[bytes] = []
            splitter = _LineSplitter(on_line)
            idle = max(1.0, min(timeout_s, idle_s or timeout_s))
            for chunk in device.streaming_shell(marker.wrap(command), transport_timeout_s=idle,
                                                read_timeout_s=idle, decode=False):
                chunks.append(chunk)
                splitter.feed(chunk.decode("utf-8", "replace"))
                if time.monotonic() > deadline:
                    raise TransportError(f"the command did not finish within {timeout_s:.0f} s")
            code, output = marker.split(b"".join(chunks).decode("utf-8", "replace"))
            if code is None:
                raise TransportError("the shell closed before the command finished")
            return ShellResult(code, output)

        return self._guard(action, timeout_s)

    def push(self, local: Path, remote: str, timeout_s: float, progress: Optional[BytesProgress] = None) -> None:
        mode = 0o100755 if os.access(local, os.X_OK) else 0o100644
        callback = _running_total(progress, os.path.getsize(local))
        self._guard(lambda device: device.push(str(local), remote, st_mode=mode, progress_callback=callback,
                                               transport_timeout_s=_idle(timeout_s), read_timeout_s=timeout_s),
                    timeout_s)

    def pull(self, remote: str, local: Path, timeout_s: float, progress: Optional[BytesProgress] = None) -> None:
        callback = _running_total(progress)
        self._guard(lambda device: device.pull(remote, str(local), progress_callback=callback,
                                               transport_timeout_s=_idle(timeout_s), read_timeout_s=timeout_s),
                    timeout_s)


def _idle(timeout_s: float) -> float:
    """How long a transfer may stall before the link counts as lost."""
    return max(5.0, min(timeout_s, 60.0))


def _running_total(progress: Optional[BytesProgress], total: Optional[int] = None):
    """adb-shell's callback gets each chunk's size; ours gets the running total."""
    done = [0]

    def callback(_path, size, reported_total):
        done[0] += size
        if progress:
            progress(done[0], total if total is not None else reported_total)

    return callback


def _transient(error: Exception) -> bool:
    """A connect that may work when tried again: refused (adbd or the bridge not listening yet), reset or
    closed, or not answered in time. Not: an unknown host name, a refused key, a protocol error."""
    from adb_shell import exceptions as ex

    return isinstance(error, (ConnectionError, TimeoutError, ex.TcpTimeoutException, ex.AdbTimeoutError,
                              ex.AdbConnectionError))


def _connect_error(target: str, error: BaseException, tries: str = "") -> TransportError:
    from adb_shell import exceptions as ex

    if isinstance(error, (ex.TcpTimeoutException, ex.AdbTimeoutError, TimeoutError)):
        return TransportError(f"no answer from {target}{tries} ({_reason(error)})")
    return TransportError(f"cannot connect to {target}{tries} ({_reason(error)})")


def _reason(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    if isinstance(error, ConnectionRefusedError):
        return "connection refused: nothing listens there; is the phone's adbd (or the emulator) running?"
    if isinstance(error, socket.gaierror):
        return f"unknown host ({error.strerror})"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return text.splitlines()[0]



class AdbServerTransport:
    """A phone that a running adb server owns (USB phones on this computer, ``adb connect``-ed
    ones, a farm's server), through the ``adb`` client: ``adb -s SERIAL shell|push|pull``.

    The server port is the client's (``$ANDROID_ADB_SERVER_PORT``, default 5037). The exit
    marker is used here too: without shell v2 on the phone, ``adb shell`` always exits 0. Before
    the first command (and the first after a failure) ``adb get-state`` must say ``device``: a
    phone the server sees offline or still connecting (as it does for a while after a network
    phone came back) is asked again with backoff; an unauthorized or unknown one is not.
    """

    def __init__(self, serial: str, adb: Optional[str] = None, backoff: Backoff = BACKOFF):
        import shutil

        self.serial = serial
        self.adb = adb or shutil.which("adb")
        self.target = f"adb server: {serial}"
        self.retries = Retries(backoff)
        self._ready = False
        self._shells: set = set()

    def _command(self, *args: str) -> list[str]:
        if not self.adb:
            raise TransportError("transport \"adb-server\" needs the adb client on PATH (apt-get install adb, "
                                 "or Android's platform-tools)")
        return [self.adb, "-s", self.serial, *args]

    def _connect(self, timeout_s: float) -> None:
        if not self._ready:
            try:
                self.retries(lambda: self._get_state(timeout_s), _server_transient, timeout_s)
            except RetryError as failed:
                raise TransportError(f"{failed.last} (after {failed.tries})") from None
            self._ready = True

    def _get_state(self, timeout_s: float) -> None:
        import subprocess

        wait = min(timeout_s, CONNECT_TIMEOUT_S)
        try:
            done = subprocess.run(self._command("get-state"), capture_output=True, text=True, timeout=wait)
        except subprocess.TimeoutExpired:
            raise TransportError(f"adb get-state did not answer within {wait:.0f} s") from None
        if done.returncode != 0 or done.stdout.strip() != "device":
            raise _server_error(done.stdout + done.stderr)

    def _guard(self, action: Callable[[], _T], timeout_s: float) -> _T:
        """``action()`` once the server has the phone; a failure makes the next call check again."""
        self._connect(timeout_s)
        try:
            return action()
        except TransportError:
            self._ready = False
            raise

    def shell(self, command: str, timeout_s: float, on_line: Optional[LineCallback] = None,
              idle_s: Optional[float] = None) -> ShellResult:
        return self._guard(lambda: self._shell(command, timeout_s, on_line, idle_s), timeout_s)

    def _shell(self, command: str, timeout_s: float, on_line: Optional[LineCallback],
               idle_s: Optional[float]) -> ShellResult:
        import queue
        import subprocess
        import threading

        marker = ExitMarker()
        process = subprocess.Popen(self._command("shell", marker.wrap(command)), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._shells.add(process)
        lines: queue.Queue[Optional[bytes]] = queue.Queue()

        def pump() -> None:
            for line in process.stdout or ():
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline, idle = time.monotonic() + timeout_s, min(timeout_s, idle_s or timeout_s)
        chunks: list[bytes] = []
        splitter = _LineSplitter(on_line)
        try:
            while True:
                wait = min(idle, deadline - time.monotonic())
                try:
                    line = lines.get(timeout=max(0.0, wait))
                except queue.Empty:
                    raise TransportError(f"no answer from {self.serial} within {wait:.0f} s") from None
                if line is None:
                    break
                chunks.append(line)
                splitter.feed(line.decode("utf-8", "replace"))
        except BaseException:
            process.kill()
            raise
        finally:
            self._shells.discard(process)
        process.wait()
        code, output = marker.split(b"".join(chunks).decode("utf-8", "replace"))
        if code is None:
            raise _server_error(output)
        return ShellResult(code, output)

    def push(self, local: Path, remote: str, timeout_s: float, progress: Optional[BytesProgress] = None) -> None:
        self._transfer(["push", str(local), remote], timeout_s)
        if progress:
            size = os.path.getsize(local)
            progress(size, size)

    def pull(self, remote: str, local: Path, timeout_s: float, progress: Optional[BytesProgress] = None) -> None:
        self._transfer(["pull", remote, str(local)], timeout_s)
        if progress:
            size = os.path.getsize(local)
            progress(size, size)

    def _transfer(self, args: list[str], timeout_s: float) -> None:
        self._guard(lambda: self._run(args, timeout_s), timeout_s)

    def _run(self, args: list[str], timeout_s: float) -> None:
        import subprocess

        try:
            done = subprocess.run(self._command(*args), capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise TransportError(f"adb {args[0]} did not finish within {timeout_s:.0f} s") from None
        if done.returncode != 0:
            raise _server_error(done.stdout + done.stderr)

    def close(self) -> None:
        """End the shells in progress (the adb client's connection to the phone goes with them)."""
        for process in list(self._shells):
            process.kill()


_SERVER_TRANSIENT = re.compile(r"offline|still (authorizing|connecting)|connection (refused|reset)|protocol fault"
                               r"|^closed$", re.IGNORECASE)
"""What the adb client says of a phone that may answer soon (``device offline`` while a network phone
reconnects, ``closed`` when its transport dropped); not ``unauthorized`` nor ``device 'X' not found``."""


def _server_transient(error: Exception) -> bool:
    return (isinstance(error, TransportError) and not isinstance(error, NotAuthorizedError)
            and bool(_SERVER_TRANSIENT.search(str(error))))


def _server_error(output: str) -> TransportError:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    last = lines[-1] if lines else "the adb client gave no answer"
    if "unauthorized" in output:
        return NotAuthorizedError(f"the phone did not authorize this computer's adb server ({last}): accept the "
                                  "prompt on the phone, then retry")
    return TransportError(last.removeprefix("adb: ").removeprefix("error: "))
