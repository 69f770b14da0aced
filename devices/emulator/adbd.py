"""An emulated phone's adbd on loopback, faithful enough for Debian's ``adb`` client.

Speaks CNXN, AUTH (optional, see ``auth``), OPEN, OKAY, WRTE and CLSE; serves ``shell:`` (v1: output only, no exit
code),
``shell,v2,...:`` (stdout, stderr and the exit code as shell-protocol packets), ``exec:``
and ``sync:`` (STAT, LIST, SEND, RECV, QUIT). Shell commands run on the host inside the
phone's sandbox root. One WRTE in flight per stream until the peer's OKAY.
"""

from __future__ import annotations

import os
import queue
import secrets
import socket
import struct
import subprocess
import threading
from pathlib import Path
from typing import Optional

from rebirth.devices.emulator import auth
from rebirth.devices.emulator import protocol as p
from rebirth.devices.emulator.phone import PhoneProfile, Sandbox, SleepingRunner
from rebirth.devices.emulator.physics import Physics

FEATURES = "shell_v2,cmd,fixed_push_mkdir"
SYNC_DATA_MAX = 64 * 1024
ACK_TIMEOUT_S = 60.0

# shell protocol v2 packet ids
STDIN, STDOUT, STDERR, EXIT, CLOSE_STDIN = 0, 1, 2, 3, 4


class Stream:
    """One logical stream of a connection: ordered, acknowledged writes; a byte inbox."""

    def __init__(self, connection: Connection, local_id: int, remote_id: int):
        self.connection, self.local_id, self.remote_id = connection, local_id, remote_id
        self.acked = threading.Event()
        self.acked.set()
        self.inbox: queue.Queue[Optional[bytes]] = queue.Queue()
        self.buffer = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        size = self.connection.max_payload
        for start in range(0, len(data), size):
            if not self.acked.wait(ACK_TIMEOUT_S) or self.closed:
                raise ConnectionError("stream closed or peer stopped acknowledging")
            self.acked.clear()
            self.connection.send(p.Message(p.WRTE, self.local_id, self.remote_id, data[start:start + size]))

    def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.inbox.get()
            if chunk is None:
                raise ConnectionError("stream closed by peer")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.connection.send(p.Message(p.CLSE, self.local_id, self.remote_id))
            except OSError:  # the phone was stopped or the host went: there is no one to tell
                pass
        self.connection.forget(self)


class Connection:
    """One host connection: the handshake, then a dispatch loop over messages."""

    def __init__(self, sock: socket.socket, sandbox: Sandbox, keys: Optional[list[auth.PublicKey]] = None,
                 on_request=None):
        self.sock, self.sandbox = sock, sandbox
        self.on_request = on_request
        self.keys = keys
        self.authorized = keys is None
        self.token = b""
        self.send_lock = threading.Lock()
        self.streams: dict[int, Stream] = {}
        self.next_id = 1
        self.max_payload = p.MAX_PAYLOAD

    def send(self, message: p.Message) -> None:
        with self.send_lock:
            self.sock.sendall(message.pack())

    def forget(self, stream: Stream) -> None:
        self.streams.pop(stream.local_id, None)

    def banner(self) -> bytes:
        props = self.sandbox.phone.props()
        return (f"device::ro.product.name={props['ro.product.name']};ro.product.model={props['ro.product.model']};"
                f"ro.product.device={props['ro.product.device']};features={FEATURES}").encode()

    def serve(self) -> None:
        try:
            while True:
                self.dispatch(p.read_message(self.sock))
        except (ConnectionError, OSError, p.ProtocolError):
            pass
        finally:
            for stream in list(self.streams.values()):
                stream.closed = True
                stream.acked.set()
                stream.inbox.put(None)
            self.sock.close()

    def dispatch(self, message: p.Message) -> None:
        if message.command == p.CNXN:
            self.max_payload = min(p.MAX_PAYLOAD, message.arg1 or p.MAX_PAYLOAD)
            if self.authorized:
                self.send(p.Message(p.CNXN, p.VERSION, p.MAX_PAYLOAD, self.banner()))
            else:
                self.challenge()
        elif message.command == p.AUTH:
            self.authenticate(message)
        elif not self.authorized:
            return  # adbd ignores everything else until the host is authorized
        elif message.command == p.OPEN:
            self.open(message.arg0, message.data.rstrip(b"\0").decode(errors="replace"))
        elif message.command == p.OKAY:
            stream = self.streams.get(message.arg1)
            if stream:
                stream.acked.set()
        elif message.command == p.WRTE:
            stream = self.streams.get(message.arg1)
            if stream:
                stream.inbox.put(message.data)
                self.send(p.Message(p.OKAY, stream.local_id, stream.remote_id))
        elif message.command == p.CLSE:
            stream = self.streams.get(message.arg1)
            if stream:
                stream.inbox.put(None)
                stream.acked.set()
                stream.close()

    def challenge(self) -> None:
        self.token = secrets.token_bytes(auth.TOKEN_SIZE)
        self.send(p.Message(p.AUTH, auth.TOKEN, 0, self.token))

    def authenticate(self, message: p.Message) -> None:
        if self.authorized or self.keys is None:
            return
        if message.arg0 == auth.SIGNATURE:
            if self.token and any(key.verify(self.token, message.data) for key in self.keys):
                self.accept()
            else:
                self.challenge()
        elif message.arg0 == auth.RSAPUBLICKEY:
            try:
                offered = auth.parse_key(message.data)
            except ValueError:
                return
            # A real phone would ask its user; nobody can tap "Allow" here, so only a key that is
            # already authorized gets in. Anyone else stays unauthorized, as on a locked phone.
            if any(key.modulus == offered.modulus and key.exponent == offered.exponent for key in self.keys):
                self.accept()

    def accept(self) -> None:
        self.authorized, self.token = True, b""
        self.send(p.Message(p.CNXN, p.VERSION, p.MAX_PAYLOAD, self.banner()))

    def open(self, remote_id: int, service: str) -> None:
        handler = service_handler(service)
        if handler is None:
            self.send(p.Message(p.CLSE, 0, remote_id))
            return
        stream = Stream(self, self.next_id, remote_id)
        self.next_id += 1
        self.streams[stream.local_id] = stream
        self.send(p.Message(p.OKAY, stream.local_id, remote_id))
        threading.Thread(target=self._run, args=(handler, stream, service), daemon=True).start()

    def _run(self, handler, stream: Stream, service: str) -> None:
        try:
            handler(self.sandbox, stream, service)
        except (ConnectionError, OSError):
            pass
        finally:
            stream.close()


def service_handler(service: str):
    head = service.split(":", 1)[0]
    if head.startswith("shell") and "v2" in head.split(","):
        return shell_v2
    if head.startswith("shell"):
        return shell_v1
    if head == "exec":
        return exec_service
    if service == "sync:":
        return sync_service
    return None


def command_of(service: str) -> str:
    return service.split(":", 1)[1] if ":" in service else ""


def spawn(sandbox: Sandbox, command: str, stderr) -> subprocess.Popen:
    rewritten = sandbox.rewrite(command) if command.strip() else "exit 0"
    return subprocess.Popen(["/bin/sh", "-c", rewritten], cwd=sandbox.root / "data/local/tmp",
                            env=sandbox.environment(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)


def _pump(source, sink) -> None:
    for chunk in iter(lambda: os.read(source.fileno(), 65536), b""):
        sink(chunk)


def _raw(sandbox: Sandbox, stream: Stream, service: str, stderr) -> None:
    process = spawn(sandbox, command_of(service), stderr)
    assert process.stdin is not None and process.stdout is not None
    process.stdin.close()
    _pump(process.stdout, stream.write)
    process.wait()


def shell_v1(sandbox: Sandbox, stream: Stream, service: str) -> None:
    """``shell:``: stdout and stderr merged, no exit code (as adbd without shell_v2)."""
    _raw(sandbox, stream, service, subprocess.STDOUT)


def exec_service(sandbox: Sandbox, stream: Stream, service: str) -> None:
    """``exec:``: stdout only, byte for byte."""
    _raw(sandbox, stream, service, subprocess.DEVNULL)


def shell_v2(sandbox: Sandbox, stream: Stream, service: str) -> None:
    process = spawn(sandbox, command_of(service), subprocess.PIPE)
    lock = threading.Lock()

    def packet(kind: int):
        def send(data: bytes) -> None:
            with lock:
                stream.write(struct.pack("<BI", kind, len(data)) + data)
        return send

    threading.Thread(target=_stdin_v2, args=(stream, process), daemon=True).start()
    errors = threading.Thread(target=_pump, args=(process.stderr, packet(STDERR)), daemon=True)
    errors.start()
    _pump(process.stdout, packet(STDOUT))
    errors.join()
    code = process.wait()
    packet(EXIT)(bytes([code & 0xFF]))


def _stdin_v2(stream: Stream, process: subprocess.Popen) -> None:
    assert process.stdin is not None
    try:
        while True:
            kind, length = struct.unpack("<BI", stream.read_exact(5))
            data = stream.read_exact(length) if length else b""
            if kind == STDIN:
                process.stdin.write(data)
                process.stdin.flush()
            elif kind == CLOSE_STDIN:
                break
    except (ConnectionError, OSError, struct.error):
        pass
    finally:
        try:
            process.stdin.close()
        except OSError:
            pass


def sync_service(sandbox: Sandbox, stream: Stream, service: str) -> None:
    while True:
        request, length = struct.unpack("<4sI", stream.read_exact(8))
        if request == b"QUIT":
            return
        path = stream.read_exact(length).decode(errors="replace")
        if stream.connection.on_request:
            stream.connection.on_request(request.decode(errors="replace"), path)
        handler = {b"STAT": sync_stat, b"LIST": sync_list, b"SEND": sync_send, b"RECV": sync_recv}.get(request)
        if handler is None:
            return _fail(stream, f"unknown sync request {request!r}")
        handler(sandbox, stream, path)


def _fail(stream: Stream, message: str) -> None:
    data = message.encode()
    stream.write(b"FAIL" + struct.pack("<I", len(data)) + data)


def sync_stat(sandbox: Sandbox, stream: Stream, path: str) -> None:
    try:
        info = sandbox.host_path(path).stat()
        stream.write(b"STAT" + struct.pack("<III", info.st_mode, info.st_size & 0xFFFFFFFF, int(info.st_mtime)))
    except (OSError, PermissionError):
        stream.write(b"STAT" + struct.pack("<III", 0, 0, 0))


def sync_list(sandbox: Sandbox, stream: Stream, path: str) -> None:
    try:
        folder = sandbox.host_path(path)
        entries = [(name, (folder / name).lstat()) for name in [".", ".."] + sorted(os.listdir(folder))]
    except (OSError, PermissionError):
        entries = []
    for name, info in entries:
        encoded = name.encode()
        stream.write(b"DENT" + struct.pack("<IIII", info.st_mode, info.st_size & 0xFFFFFFFF, int(info.st_mtime),
                                           len(encoded)) + encoded)
    stream.write(b"DONE" + struct.pack("<IIII", 0, 0, 0, 0))


def sync_send(sandbox: Sandbox, stream: Stream, spec: str) -> None:
    path, _, mode_text = spec.rpartition(",")
    if not path:
        path, mode_text = spec, "33188"
    try:
        target = sandbox.host_path(path)
    except PermissionError as error:
        _drain_send(stream)
        return _fail(stream, str(error))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    with open(partial, "wb") as out:
        while True:
            kind, length = struct.unpack("<4sI", stream.read_exact(8))
            if kind == b"DATA":
                out.write(stream.read_exact(length))
            elif kind == b"DONE":
                mtime = length
                break
            else:
                return _fail(stream, f"unexpected {kind!r} during SEND")
    os.chmod(partial, int(mode_text) & 0o7777 if mode_text.isdigit() else 0o644)
    os.replace(partial, target)
    os.utime(target, (mtime, mtime))
    stream.write(b"OKAY" + struct.pack("<I", 0))


def _drain_send(stream: Stream) -> None:
    while True:
        kind, length = struct.unpack("<4sI", stream.read_exact(8))
        if kind == b"DONE":
            return
        stream.read_exact(length)


def sync_recv(sandbox: Sandbox, stream: Stream, path: str) -> None:
    try:
        source = sandbox.host_path(path)
        handle = open(source, "rb")  # noqa: SIM115 (closed by the with below, once the open is known to work)
    except (OSError, PermissionError) as error:
        return _fail(stream, f"{path}: {getattr(error, 'strerror', None) or error}")
    pending: list[bytes] = []
    size = 0
    with handle:
        for chunk in iter(lambda: handle.read(SYNC_DATA_MAX), b""):
            pending.append(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
            size += len(pending[-1])
            if size + SYNC_DATA_MAX + 8 > stream.connection.max_payload:
                stream.write(b"".join(pending))
                pending, size = [], 0
    stream.write(b"".join(pending) + b"DONE" + struct.pack("<I", 0))


class EmulatedPhone:
    """A listening adbd for one phone profile; ``start`` returns once the port is bound."""

    def __init__(self, root: Path, phone: PhoneProfile, host: str = "127.0.0.1", port: int = 0,
                 authorized_keys: Optional[list[auth.PublicKey]] = None, runner: Optional[SleepingRunner] = None,
                 abi: Optional[str] = None, physics: Optional[Physics] = None):
        """``authorized_keys`` turns RSA authentication on: only hosts holding one of them get in.
        ``runner`` makes the phone's executor_runner sleep instead of compute (default: it computes).
        ``abi`` (default: the host's) another ABI makes a phone whose CPU qemu-user emulates (see ``Sandbox``).
        ``physics`` gives the phone a body: heat from its runners' CPU time, clocks that throttle, a fuel gauge
        (``devices.emulator.physics``); default: fixed readings.

        Raises:
            ValueError: ``host`` is not a loopback address and authentication is off.
        """
        if authorized_keys is None and not is_loopback(host):
            raise ValueError(f"listening on {host} lets anyone who reaches it run commands as this user: "
                             "that needs authentication (--auth)")
        self.sandbox = Sandbox(root, phone, runner, abi, physics)
        self.host, self.port = host, port
        self.keys = authorized_keys
        self.on_request = None
        """Tests set this to ``f(request, path)``, called as each sync request (SEND, RECV, ...) starts:
        the place to make the phone disappear mid-push or mid-pull."""
        self.server: Optional[socket.socket] = None
        self.connections: list[Connection] = []

    def start(self) -> EmulatedPhone:
        self.sandbox.populate()
        if self.sandbox.body is not None:
            self.sandbox.body.start()
        self.server = socket.create_server((self.host, self.port), reuse_port=False)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        assert self.server is not None
        while True:
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = Connection(sock, self.sandbox, self.keys, lambda *args: self.on_request and
                                    self.on_request(*args))
            self.connections.append(connection)
            threading.Thread(target=connection.serve, daemon=True).start()

    def stop(self) -> None:
        """Stop listening and drop every connection, as a phone that disappears."""
        if self.sandbox.body is not None:
            self.sandbox.body.stop()
        if self.server:
            try:
                self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in another thread
            except OSError:
                pass
            self.server.close()
        for connection in self.connections:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.sock.close()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
