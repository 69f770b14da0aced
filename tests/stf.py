"""A stand-in for a DeviceFarmer STF server (STF itself needs RethinkDB, which no registry reachable here
ships), checked against STF's own published API description.

The description is STF 3.7.9's ``lib/units/api/swagger/api_v1_generated.json``, taken from the package on
npm when the tests run (``npm pack``; cached), never copied into this repository. Every request the
stand-in gets is checked against it: the path and method exist, the access token is sent as STF
requires (``Authorization: Bearer TOKEN``), required path, query and body parameters are there, query
parameters are ones the operation declares, and a JSON body has the required properties with the
declared types. What does not conform is recorded in ``violations``, which a test asserts empty.

The behaviour follows STF 3.7's controllers (``lib/units/api/controllers/user.js``, ``devices.js``,
``helpers/securityHandlers.js``): the status codes and descriptions for a bad token (401), a phone that
is taken or absent (403, 404), a release by someone who does not hold the phone (403); a device is
addable when present, ready and without owner; a lease ends by itself after its ``timeout`` (ms).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, unquote, urlparse

STF_VERSION = "3.7.9"
SPEC_MEMBER = "package/lib/units/api/swagger/api_v1_generated.json"


def stf_api_description(cache: Optional[Path] = None) -> dict[str, Any]:
    """STF's swagger description of its API, from the npm package (downloaded once, then cached).

    Raises:
        RuntimeError: npm is missing or the registry cannot be reached (the message says which).
    """
    cache = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rebirth-tests"
    spec = cache / f"stf-{STF_VERSION}-api_v1_generated.json"
    if not spec.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as folder:
            try:
                done = subprocess.run(["npm", "pack", f"@devicefarmer/stf@{STF_VERSION}", "--silent"], cwd=folder,
                                      capture_output=True, text=True, timeout=300)
            except FileNotFoundError:
                raise RuntimeError("the STF tests need npm to fetch STF's API description: scripts/setup-host "
                                   "installs it where it is missing (a Node.js that ships its own npm keeps it)"
                                   ) from None
            if done.returncode != 0:
                raise RuntimeError(f"npm pack @devicefarmer/stf@{STF_VERSION} failed: {done.stderr.strip()[-300:]}")
            tarball = next(Path(folder).glob("*.tgz"))
            with tarfile.open(tarball) as archive:
                member = archive.extractfile(SPEC_MEMBER)
                assert member is not None, f"{SPEC_MEMBER} is not in the package"
                staged = spec.with_suffix(".partial")
                staged.write_bytes(member.read())
                os.replace(staged, spec)
    return json.loads(spec.read_text())


@dataclass
class StfDevice:
    serial: str
    address: str
    """Where remote connect sends adb: an emulated phone's host:port."""
    model: str = "SM-G920F"
    sdk: str = "24"
    abi: str = "arm64-v8a"
    present: bool = True
    ready: bool = True
    owner: Optional[dict[str, str]] = None
    lease_ends: float = 0.0
    connected: bool = False

    def fields(self, user_email: str) -> dict[str, Any]:
        """The device as STF's API shows it to ``user_email`` (``datautil.normalize``)."""
        owner = self.owner if self.present else None
        return {"serial": self.serial, "present": self.present, "ready": self.ready, "owner": owner,
                "using": bool(owner) and owner.get("email") == user_email, "model": self.model,
                "manufacturer": "SAMSUNG", "marketName": f"Galaxy {self.model}", "sdk": self.sdk, "abi": self.abi,
                "version": "7.0", "product": self.model.lower(), "platform": "Android"}


@dataclass
class StfStandIn:
    """The server's state: its users' tokens, its devices, every request and every violation of the API."""

    description: dict[str, Any]
    tokens: dict[str, str] = field(default_factory=dict)
    """token -> the user's email."""
    devices: dict[str, StfDevice] = field(default_factory=dict)
    requests: list[tuple[str, str, Optional[dict]]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    on_request: Any = None
    unavailable: int = 0
    """Answer the next this many requests with 503 and an HTML page, as the proxy before STF does while STF's
    API unit restarts."""
    server: Optional[ThreadingHTTPServer] = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, port: int = 0) -> StfStandIn:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                stand_in.handle(self, "get")

            def do_POST(self):
                stand_in.handle(self, "post")

            def do_DELETE(self):
                stand_in.handle(self, "delete")

            def do_PUT(self):
                stand_in.handle(self, "put")

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def leased(self) -> list[str]:
        """Serials that someone holds now (expired leases end first)."""
        with self.lock:
            self._expire()
            return sorted(serial for serial, device in self.devices.items() if device.owner)

    # --- the API ---------------------------------------------------------------------------------

    def handle(self, http: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urlparse(http.path)
        length = int(http.headers.get("Content-Length") or 0)
        raw = http.rfile.read(length) if length else b""
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                self.violations.append(f"{method.upper()} {parsed.path}: the body is not JSON")
        with self.lock:
            self.requests.append((method.upper(), parsed.path, body))
        if self.on_request:
            self.on_request(method.upper(), parsed.path)
        with self.lock:
            busy, self.unavailable = self.unavailable > 0, max(0, self.unavailable - 1)
        if busy:
            status, kind = 503, "text/html"
            data = b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
        else:
            status, answer = self.answer(method, parsed.path, parse_qs(parsed.query), http.headers, body)
            data, kind = json.dumps(answer).encode(), "application/json"
        http.send_response(status)
        http.send_header("Content-Type", kind)
        http.send_header("Content-Length", str(len(data)))
        http.end_headers()
        http.wfile.write(data)

    def answer(self, method: str, path: str, query: dict[str, list[str]], headers, body) -> tuple[int, dict]:
        base = self.description.get("basePath", "/api/v1")
        if not path.startswith(base + "/"):
            self.violations.append(f"{method.upper()} {path}: not under {base}")
            return 404, {"success": False, "description": "Not Found"}
        operation, params = self._operation(method, path[len(base):])
        if operation is None:
            self.violations.append(f"{method.upper()} {path}: no such operation in STF's API")
            return 404, {"success": False, "description": "Not Found"}
        self._check(operation, method, path, query, headers, body, params)
        authorization = headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer":
            return 401, {"success": False,
                         "description": 'Authorization header should be in "Bearer $AUTH_TOKEN" format'}
        user = self.tokens.get(token)
        if user is None:
            return 401, {"success": False, "description": "Bad Credentials"}
        with self.lock:
            self._expire()
            return self._act(operation["operationId"], user, params, query, body or {})

    def _operation(self, method: str, path: str) -> tuple[Optional[dict], dict[str, str]]:
        for template, operations in self.description["paths"].items():
            pattern = "^" + re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
            match = re.match(pattern, path)
            if match and method in operations:
                return operations[method], {k: unquote(v) for k, v in match.groupdict().items()}
        return None, {}

    def _check(self, operation: dict, method: str, path: str, query, headers, body, params) -> None:
        where = f"{method.upper()} {path}"
        if operation.get("security") and not headers.get("Authorization", "").startswith("Bearer "):
            self.violations.append(f"{where}: no Bearer token in the Authorization header")
        declared = {param["name"]: param for param in operation.get("parameters", [])}
        for name in query:
            if declared.get(name, {}).get("in") != "query":
                self.violations.append(f"{where}: query parameter {name!r} is not declared")
        for name, param in declared.items():
            place = param["in"]
            if place == "path" and name not in params:
                self.violations.append(f"{where}: path parameter {name!r} missing")
            if place == "query" and param.get("required") and name not in query:
                self.violations.append(f"{where}: required query parameter {name!r} missing")
            if place == "body":
                if body is None:
                    if param.get("required"):
                        self.violations.append(f"{where}: required body {name!r} missing")
                    continue
                if "json" not in headers.get("Content-Type", ""):
                    self.violations.append(f"{where}: a body without Content-Type application/json")
                self._check_schema(where, param.get("schema", {}), body)
        if body is not None and not any(param["in"] == "body" for param in declared.values()):
            self.violations.append(f"{where}: a body the operation does not take")

    def _check_schema(self, where: str, schema: dict, body) -> None:
        if "$ref" in schema:
            schema = self.description["definitions"][schema["$ref"].rsplit("/", 1)[-1]]
        if not isinstance(body, dict):
            self.violations.append(f"{where}: the body is not an object")
            return
        for name in schema.get("required", []):
            if name not in body:
                self.violations.append(f"{where}: required property {name!r} missing")
        types = {"string": str, "integer": int, "boolean": bool, "object": dict, "array": list}
        for name, value in body.items():
            declared = schema.get("properties", {}).get(name)
            if declared is None:
                self.violations.append(f"{where}: property {name!r} is not in the schema")
            elif declared.get("type") in types and (not isinstance(value, types[declared["type"]])
                                                    or (declared["type"] == "integer" and isinstance(value, bool))):
                self.violations.append(f"{where}: property {name!r} is not {declared['type']}")

    def _expire(self) -> None:
        now = time.monotonic()
        for device in self.devices.values():
            if device.owner and device.lease_ends and now > device.lease_ends:
                device.owner, device.connected, device.lease_ends = None, False, 0.0

    def _act(self, operation: str, user: str, params, query, body) -> tuple[int, dict]:
        fields = query.get("fields", [""])[0].split(",") if query.get("fields") else None

        def shown(device: StfDevice) -> dict:
            data = device.fields(user)
            return {key: value for key, value in data.items() if key in fields} if fields else data

        serial = params.get("serial") or body.get("serial")
        device = self.devices.get(serial) if serial else None
        if operation == "getUser":
            return 200, {"success": True, "user": {"email": user}}
        if operation == "getDevices":
            return 200, {"success": True, "description": "Devices Information",
                         "devices": [shown(d) for d in self.devices.values()]}
        if operation == "getUserDevices":
            return 200, {"success": True, "description": "Controlled devices information",
                         "devices": [shown(d) for d in self.devices.values() if d.owner and d.owner["email"] == user]}
        if device is None:
            return 404, {"success": False, "description": "Device not found"}
        owned = device.present and device.ready and device.owner is not None and device.owner["email"] == user
        if operation == "addUserDevice":
            if not (device.present and device.ready and device.owner is None):
                return 403, {"success": False, "description": "Device is being used or not available"}
            timeout = body.get("timeout")
            device.owner = {"email": user, "name": user.split("@")[0], "group": "default"}
            device.lease_ends = time.monotonic() + timeout / 1000 if timeout else 0.0
            return 200, {"success": True, "description": "Device successfully added"}
        if operation == "remoteConnectUserDeviceBySerial":
            if not owned:
                return 403, {"success": False, "description": "Device is not owned by you or is not available"}
            device.connected = True
            return 200, {"success": True, "description": "Remote connection is enabled",
                         "remoteConnectUrl": device.address}
        if operation == "remoteDisconnectUserDeviceBySerial":
            if not owned:
                return 403, {"success": False, "description": "Device is not owned by you or is not available"}
            device.connected = False
            return 200, {"success": True, "description": "Device remote disconnected successfully"}
        if operation == "deleteUserDeviceBySerial":
            if not owned:
                return 403, {"success": False, "description": "You cannot release this device. Not owned by you"}
            device.owner, device.connected, device.lease_ends = None, False, 0.0
            return 200, {"success": True, "description": "Device successfully removed"}
        if operation in ("getDeviceBySerial", "getUserDeviceBySerial"):
            return 200, {"success": True, "device": shown(device)}
        return 500, {"success": False, "description": f"the stand-in does not do {operation}"}
