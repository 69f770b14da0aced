"""The phones a running adb server knows (``adb devices -l``), read over its socket protocol:
``host:devices-l`` on 127.0.0.1:5037. Nothing is started: no server, no list."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Optional


def server_port() -> int:
    """The adb server's port, as the adb client finds it: $ANDROID_ADB_SERVER_PORT, else 5037."""
    text = os.environ.get("ANDROID_ADB_SERVER_PORT", "")
    return int(text) if text.isdigit() else 5037


@dataclass(frozen=True)
class ServerDevice:
    serial: str
    state: str
    model: Optional[str] = None


def parse_devices(text: str) -> list[ServerDevice]:
    """``adb devices -l`` lines -> ServerDevice list."""
    devices = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        fields = dict(part.split(":", 1) for part in parts[2:] if ":" in part)
        devices.append(ServerDevice(parts[0], parts[1], fields.get("model")))
    return devices


def server_devices(port: Optional[int] = None, timeout_s: float = 1.0) -> list[ServerDevice]:
    try:
        with socket.create_connection(("127.0.0.1", port or server_port()), timeout=timeout_s) as sock:
            request = b"host:devices-l"
            sock.sendall(b"%04x" % len(request) + request)
            if _read(sock, 4) != b"OKAY":
                return []
            length = int(_read(sock, 4), 16)
            return parse_devices(_read(sock, length).decode(errors="replace"))
    except (OSError, ValueError):
        return []


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("adb server closed the connection")
        data += chunk
    return data
