"""An emulated phone a test can kill and bring back, and what was pushed to it."""

import socket
import struct
import threading
from pathlib import Path
from typing import Optional

from rebirth.devices.emulator import PHONES, EmulatedPhone


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Phone:
    """An emulated phone that a test can kill and bring back on the same port and file system."""

    def __init__(self, root: Path, keys=None, abi: Optional[str] = None):
        self.root, self.keys, self.abi, self.port = root, keys, abi, free_port()
        self.emulator = None
        self.requests: list[tuple[str, str]] = []
        self.on_request = None

    def start(self) -> "Phone":
        self.emulator = EmulatedPhone(self.root, PHONES["galaxy-s6"], port=self.port, authorized_keys=self.keys,
                                      abi=self.abi)
        self.emulator.on_request = self._request
        self.emulator.start()
        return self

    def _request(self, kind, path):
        self.requests.append((kind, path))
        if self.on_request:
            self.on_request(kind, path)

    def stop(self) -> None:
        self.emulator.stop()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def device_path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def pushes(self) -> list[str]:
        """The device paths pushed to the phone so far (a SEND request is ``PATH,MODE``)."""
        return [path.rsplit(",", 1)[0] for kind, path in self.requests if kind == "SEND"]


def reset_then_start(phone: Phone, resets: int) -> threading.Thread:
    """Listen on the phone's port and reset the first ``resets`` connections, as an STF bridge does before its
    phone is attached; then start the phone on that port."""
    server = socket.create_server(("127.0.0.1", phone.port))

    def serve() -> None:
        for _ in range(resets):
            sock, _ = server.accept()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
            sock.close()
        server.close()
        phone.start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread
