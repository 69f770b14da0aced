"""A small headless-Chromium driver for tests, over the DevTools protocol on a pipe (no dependency).

``chromium --remote-debugging-pipe`` reads NUL-terminated JSON commands on fd 3 and writes
responses and events on fd 4. One ``Browser`` per test module; each ``open()`` is a fresh tab
that records console errors, exceptions, network requests and JavaScript dialogs from the start.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Optional

import pytest

EXECUTABLES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--remote-debugging-pipe", "--no-sandbox", "--no-first-run", "--no-default-browser-check",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio", "--hide-scrollbars")


class BrowserError(RuntimeError):
    """The browser died, timed out or answered a command with an error."""


def find_chromium() -> str:
    """The Chromium executable; skips the calling test when there is none, fails when ``CI`` is set."""
    for name in EXECUTABLES:
        path = shutil.which(name)
        if path:
            return path
    reason = "Chromium is not installed (Debian: apt-get install chromium); the browser tests need it"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class Page:
    """One tab: what it logged, requested and tried to show, and a way to run JavaScript in it."""

    browser: Browser
    session: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def send(self, method: str, **params: Any) -> dict:
        """Send a command to this tab and return its result."""
        return self.browser.send(method, session=self.session, **params)

    def evaluate(self, expression: str, timeout: float = 20.0) -> Any:
        """The value of a JavaScript expression (promises are awaited); raises on a JavaScript error."""
        result = self.browser.send("Runtime.evaluate", session=self.session, timeout=timeout, expression=expression,
                                   awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:60]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, scale: float = 1.0) -> bytes:
        """A PNG of the viewport, scaled by ``scale`` (the tab is brought to the front: hidden tabs do not paint)."""
        self.send("Page.bringToFront")
        clip = {"x": 0, "y": 0, "width": self.browser.width, "height": self.browser.height, "scale": scale}
        return base64.b64decode(self.send("Page.captureScreenshot", format="png", clip=clip)["data"])

    def record(self, method: str, params: dict) -> None:
        """Keep what a test checks from one event of this tab."""
        if method == "Runtime.exceptionThrown":
            self.errors.append(f"exception: {params['exceptionDetails']}")
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.errors.append(f"console.{params['type']}: {[a.get('value') for a in params['args']]}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Page.javascriptDialogOpening":
            self.dialogs.append(params["message"])
            self.browser.post("Page.handleJavaScriptDialog", session=self.session, accept=True)


class Browser:
    """A headless Chromium driven over ``--remote-debugging-pipe``; use as a context manager."""

    def __init__(self, executable: str, width: int = 1366, height: int = 900) -> None:
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="rebirth-chromium-")
        to_browser, self._to_browser = _pipe_above(10)
        self._from_browser, from_browser = _pipe_above(10)
        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=False,
            start_new_session=True, preexec_fn=lambda: (os.dup2(to_browser, 3), os.dup2(from_browser, 4)))
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self._pages: dict[str, Page] = {}

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None:
        """Kill the browser with its helper processes (its own session) and remove its profile folder."""
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)

    def open(self, url: str, ready: Optional[str] = None, timeout: float = 30.0) -> Page:
        """Open ``url`` in a new tab with every watch on; wait for the load event and ``ready`` (JS) to be true."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        page = self._pages[session] = Page(self, session)
        for domain in ("Runtime", "Log", "Network", "Page"):
            page.send(f"{domain}.enable")
        page.send("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height, deviceScaleFactor=1,
                  mobile=False)
        page.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired", session, timeout)
        if ready:
            message, limit = json.dumps(f"not ready: {ready}"), f"{timeout * 1000:.0f}"
            page.evaluate(f"""new Promise((done, fail) => {{ const start = Date.now(); (function poll() {{
                if ({ready}) done(true);
                else if (Date.now() - start > {limit}) fail(new Error({message}));
                else setTimeout(poll, 50); }})(); }})""", timeout=timeout + 5)
        return page

    def send(self, method: str, session: Optional[str] = None, timeout: float = 20.0, **params: Any) -> dict:
        """Send a command and wait for its answer, recording the events that arrive meanwhile."""
        message_id = self.post(method, session, **params)
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline, method)
            if message.get("id") == message_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})

    def post(self, method: str, session: Optional[str] = None, **params: Any) -> int:
        """Send a command without waiting for its answer; returns its id."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        return self._next_id

    def wait_for(self, event: str, session: str, timeout: float) -> dict:
        """Wait for one event of one tab and return its parameters."""
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline, event)
            if message.get("method") == event and message.get("sessionId") == session:
                return message["params"]

    def _receive(self, deadline: float, waiting_for: str) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._from_browser], [], [], remaining)[0]:
                raise BrowserError(f"timed out waiting for {waiting_for}")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise BrowserError(f"the browser exited (code {self.process.poll()}) waiting for {waiting_for}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(raw)
        page = self._pages.get(message.get("sessionId", ""))
        if page is not None and "method" in message:
            page.record(message["method"], message["params"])
        return message


def _pipe_above(lowest: int) -> tuple[int, int]:
    """A close-on-exec pipe numbered at least ``lowest``, so that dup2 to fds 3 and 4 clobbers neither end."""
    ends = []
    for fd in os.pipe():
        ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, lowest))
        os.close(fd)
    return ends[0], ends[1]


def png_pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGB(A) pixels of an 8-bit, non-interlaced PNG (what Chromium writes)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, chunks, header = 8, [], b""
    while position < len(png):
        length, kind = struct.unpack(">I4s", png[position:position + 8])
        payload = png[position + 8:position + 8 + length]
        header = payload if kind == b"IHDR" else header
        chunks += [payload] if kind == b"IDAT" else []
        position += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and not interlace, f"unsupported PNG (depth {depth}, colour {colour})"
    channels = 4 if colour == 6 else 3
    return width, height, _unfilter(zlib.decompress(b"".join(chunks)), width * channels, channels, height)


def _unfilter(data: bytes, stride: int, channels: int, height: int) -> list[bytes]:
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = data[y * (stride + 1)], bytearray(data[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, corner = previous[x], previous[x - channels] if x >= channels else 0
            line[x] = (line[x] + _predict(kind, left, up, corner)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return rows


def _predict(kind: int, left: int, up: int, corner: int) -> int:
    if kind == 0:
        return 0
    if kind == 1:
        return left
    if kind == 2:
        return up
    if kind == 3:
        return (left + up) // 2
    estimate = left + up - corner
    distances = (abs(estimate - left), abs(estimate - up), abs(estimate - corner))
    return (left, up, corner)[distances.index(min(distances))]
