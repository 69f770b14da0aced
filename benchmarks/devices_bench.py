"""Benchmarks of the device layer against the emulated phone; results go to
benchmarks/results/devices.json.

    python benchmarks/devices_bench.py [--quick] [--only throughput|orchestration]

The emulated phone runs as its own process (``rebirth devices emulate``), as a phone would.

1. throughput: push and pull of a 50 MB file through rebirth's transport (adb-shell), and
   through Debian's ``adb`` client where it is installed (goal: >= 100 MB/s on loopback);
2. orchestration: the same model profiled on ``local`` and on the emulated phone ``s6``, one
   profile each, alternating; ratio of wall times (goal: <= 1.10) and of p50 latencies
   (goal: within 5%). The model is pushed once before timing, as it is after the first run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, write_results

MB = 1_000_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmulatorProcess:
    def __init__(self, root: Path):
        self.port = free_port()
        self.process = subprocess.Popen([sys.executable, "-m", "rebirth", "devices", "emulate", "--port",
                                         str(self.port), "--root", str(root)], cwd=ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()
        if "listening" not in line:
            raise RuntimeError(f"the emulator did not start: {line!r}")
        self.address = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def throughput(root: Path, size: int, repeats: int) -> dict:
    from rebirth.devices.transport import AdbShellTransport

    phone = EmulatorProcess(root / "phone")
    source, back = root / "push.bin", root / "pull.bin"
    source.write_bytes(os.urandom(size))
    results = {"file_mb": size / MB, "repeats": repeats, "goal_mb_s": ">= 100"}
    try:
        transport = AdbShellTransport(phone.address)
        push, pull = [], []
        for index in range(repeats):
            start = time.perf_counter()
            transport.push(source, f"/data/local/tmp/bench{index}.bin", 120)
            push.append(size / MB / (time.perf_counter() - start))
            start = time.perf_counter()
            transport.pull(f"/data/local/tmp/bench{index}.bin", back, 120)
            pull.append(size / MB / (time.perf_counter() - start))
            assert back.read_bytes() == source.read_bytes(), "pulled bytes differ"
        transport.close()
        results["rebirth_adb_shell"] = {"push_mb_s": statistics.median(push), "pull_mb_s": statistics.median(pull),
                                        "push_all": push, "pull_all": pull}
        adb = shutil.which("adb")
        if adb:
            results["debian_adb"] = _debian_adb(adb, phone.address, source, back, size, repeats)
    finally:
        phone.stop()
    return results


def _debian_adb(adb: str, address: str, source: Path, back: Path, size: int, repeats: int) -> dict:
    port = str(free_port())
    home = Path(tempfile.mkdtemp(prefix="adb-home-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANDROID_", "ADB_"))}
    env["HOME"] = str(home)

    def run(*args):
        return subprocess.run([adb, "-P", port, *args], capture_output=True, text=True, env=env, timeout=300)

    run("connect", address)
    push, pull = [], []
    try:
        for index in range(repeats):
            start = time.perf_counter()
            assert run("-s", address, "push", str(source), f"/data/local/tmp/adb{index}.bin").returncode == 0
            push.append(size / MB / (time.perf_counter() - start))
            start = time.perf_counter()
            assert run("-s", address, "pull", f"/data/local/tmp/adb{index}.bin", str(back)).returncode == 0
            pull.append(size / MB / (time.perf_counter() - start))
    finally:
        run("kill-server")
        shutil.rmtree(home, ignore_errors=True)
    return {"push_mb_s": statistics.median(push), "pull_mb_s": statistics.median(pull), "push_all": push,
            "pull_all": pull, "note": "each figure includes starting the adb client process"}


def orchestration(root: Path, model: str, pairs: int, iterations: int, threads: int) -> dict:
    from rebirth.models import import_heavy
    from rebirth.profiler import ProfileOptions
    from rebirth.usecases.profiling import profile

    phone = EmulatorProcess(root / "orchestration-phone")
    inventory = root / "devices.toml"
    inventory.write_text(f'[devices.s6]\naddress = "{phone.address}"\n')
    os.environ["REBIRTH_DEVICES"] = str(inventory)
    import_heavy()
    options = {"warmup": 3, "iterations": iterations, "threads": threads}
    try:
        first = time.perf_counter()
        profile(model, ProfileOptions(device="s6", **options))  # exports if needed and pushes the model once
        first_s = time.perf_counter() - first
        walls = {"local": [], "s6": []}
        p50s = {"local": [], "s6": []}
        for index in range(pairs):
            order = ("local", "s6") if index % 2 == 0 else ("s6", "local")
            for device in order:
                start = time.perf_counter()
                result = profile(model, ProfileOptions(device=device, **options))
                walls[device].append(time.perf_counter() - start)
                p50s[device].append(result.latency.p50)
    finally:
        phone.stop()
    wall = {device: statistics.median(values) for device, values in walls.items()}
    p50 = {device: statistics.median(values) for device, values in p50s.items()}
    return {"model": model, "pairs": pairs, "warmup": 3, "iterations": iterations, "threads": threads,
            "wall_s": wall, "wall_all_s": walls, "wall_ratio_s6_over_local": wall["s6"] / wall["local"],
            "p50_ms": p50, "p50_all_ms": p50s, "p50_ratio_s6_over_local": p50["s6"] / p50["local"],
            "first_s6_profile_s_with_push": first_s, "goals": {"wall_ratio": "<= 1.10", "p50_ratio": "0.95..1.05"}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, a smaller model (a smoke run)")
    parser.add_argument("--only", choices=("throughput", "orchestration"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/devices.json")
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.only and args.out.exists() else {}
    with tempfile.TemporaryDirectory(prefix="rebirth-devices-bench-") as folder:
        root = Path(folder)
        if args.only in (None, "throughput"):
            results["throughput"] = throughput(root, 50 * MB, 2 if args.quick else 5)
            print(json.dumps(results["throughput"], indent=1), flush=True)
        if args.only in (None, "orchestration"):
            model = "zoo:googlenet-small" if args.quick else "zoo:googlenet"
            results["orchestration"] = orchestration(root, model, 2 if args.quick else 5, 20, 2)
            print(json.dumps(results["orchestration"], indent=1), flush=True)
    if not args.quick:
        write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
