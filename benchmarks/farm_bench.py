"""Benchmark of the device farm's fan-out; results go to benchmarks/results/farm.json.

    python benchmarks/farm_bench.py [--quick]

The same farm run (export once, profile on every phone at once, store every result) on 1 and on
8 emulated phones, each phone its own process as a phone would be, alternating, several times;
goal: the median wall time on 8 phones <= 1.25x the median on 1. The phones' executor_runner
sleeps instead of computing (``devices.emulator.SleepingRunner``, 50 ms per execution, and 200 ms
as a slower phone or model would take) and hands back a real ETDump recorded once, so that 8
phones do not compete for this host's cores for compute while rebirth's host-side work
(connections, pushes, pulls, ETDump and ETRecord parsing, the store) stays real.

What a phone does besides computing still runs on this host: its adbd, the shells rebirth sends
it (reading clocks and temperatures forks a ``cat`` per sysfs file), the runner's start. The CPU
seconds of rebirth's process and of the phones' processes are recorded apart, and so is
rebirth's host-side parsing per device, for a tiny model and for a small CNN.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT, Silent, write_results

EXECUTION_MS = (50.0, 200.0)
WARMUP, ITERATIONS = 3, 20
MODELS = {"probe": f"{ROOT / 'models/probe.py'}:probe", "mobilenet_v2-small": "zoo:mobilenet_v2-small"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_phone(port: int, root: Path, recordings: Path, execution_ms: float) -> None:
    """Run one emulated phone with a sleeping runner until killed (the child process's job)."""
    from rebirth.devices.emulator import PHONES, EmulatedPhone, SleepingRunner

    phone = EmulatedPhone(root, PHONES["galaxy-s6"], port=port,
                          runner=SleepingRunner(execution_ms, recordings)).start()
    print(f"listening on {phone.address}", flush=True)
    threading.Event().wait()


class PhoneProcess:
    def __init__(self, root: Path, recordings: Path, execution_ms: float):
        self.port = free_port()
        self.process = subprocess.Popen([sys.executable, __file__, "--serve-phone", str(self.port), str(root),
                                         str(recordings), str(execution_ms)], cwd=ROOT, stdout=subprocess.PIPE,
                                        text=True)
        line = self.process.stdout.readline()
        if "listening" not in line:
            raise RuntimeError(f"the emulated phone did not start: {line!r}")
        self.address = f"127.0.0.1:{self.port}"

    def cpu_s(self) -> float:
        """CPU seconds of the phone: its adbd and the shells and runners it waited for."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def timed_farm_run(model: str, targets: tuple[str, ...], store: Path, phones: list[PhoneProcess]) -> dict:
    """One farm run: its wall time and the CPU seconds of rebirth's process and of the phones."""
    from rebirth.profiler import FarmRequest, run_farm

    request = FarmRequest(model, targets, store, "xnnpack", WARMUP, ITERATIONS)
    phones_before, host_before = sum(phone.cpu_s() for phone in phones), time.process_time()
    start = time.perf_counter()
    runs = run_farm(request, Silent())
    took = time.perf_counter() - start
    failed = [f"{run.device}: {run.error}" for run in runs if not run.ok]
    if failed:
        raise RuntimeError(f"a farm run failed: {failed}")
    return {"wall_s": took, "rebirth_cpu_s": time.process_time() - host_before,
            "phones_cpu_s": sum(phone.cpu_s() for phone in phones) - phones_before}


def fan_out(root: Path, model: str, phones: int, repeats: int, execution_ms: float) -> dict:
    """Alternate farm runs on 1 and on ``phones`` phones; median wall times and their ratio."""
    processes = [PhoneProcess(root / f"phone{index}", root / "recordings", execution_ms) for index in range(phones)]
    names = tuple(f"p{index}" for index in range(phones))
    inventory = root / "devices.toml"
    inventory.write_text("".join(f'[devices.{name}]\naddress = "{process.address}"\n'
                                 for name, process in zip(names, processes)))
    os.environ["REBIRTH_DEVICES"] = str(inventory)
    store = root / "store"
    try:
        first_s = timed_farm_run(model, names[:1], store, processes)["wall_s"]  # export, push, recording
        timed_farm_run(model, names, store, processes)  # pushes the model to the other phones
        runs: dict[str, list[dict]] = {"1": [], str(phones): []}
        for index in range(repeats):
            order = (names[:1], names) if index % 2 == 0 else (names, names[:1])
            for targets in order:
                runs[str(len(targets))].append(timed_farm_run(model, targets, store, processes))
    finally:
        for process in processes:
            process.stop()
    median = {count: {measure: statistics.median(run[measure] for run in values) for measure in values[0]}
              for count, values in runs.items()}
    return {"model": model, "phones": phones, "repeats": repeats, "execution_ms_simulated": execution_ms,
            "warmup": WARMUP, "iterations": ITERATIONS, "first_run_s_with_export_push_and_recording": first_s,
            "median": median, "all": runs, "wall_ratio": median[str(phones)]["wall_s"] / median["1"]["wall_s"],
            "goal": "<= 1.25"}


def host_analysis_s(model: str) -> float:
    """Seconds of this host's CPU one device's Profile costs to build (ETDump + ETRecord + .pte), median of 3."""
    from rebirth.contract import DeviceInfo, Settings
    from rebirth.devices import RunRequest
    from rebirth.devices.local import LocalDevice
    from rebirth.models import ensure_pte, parse_spec, read_pte
    from rebirth.profiler import Measurement, build_profile

    exported = ensure_pte(parse_spec(model), "xnnpack")
    with tempfile.TemporaryDirectory() as folder:
        result = LocalDevice().run(RunRequest(exported.pte, ITERATIONS, WARMUP), Path(folder))
        times = []
        for _ in range(3):
            start = time.perf_counter()
            build_profile(read_pte(exported.pte), exported.etrecord, model, Measurement(result.etdump_path),
                          DeviceInfo("local", "local"), Settings(warmup=WARMUP, iterations=ITERATIONS))
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, results not written (a smoke run)")
    parser.add_argument("--serve-phone", nargs=4, metavar=("PORT", "ROOT", "RECORDINGS", "MS"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/farm.json")
    args = parser.parse_args()
    if args.serve_phone:
        port, root, recordings, execution_ms = args.serve_phone
        serve_phone(int(port), Path(root), Path(recordings), float(execution_ms))
        return 0
    from rebirth.models import import_heavy

    import_heavy()
    results = {"fan_out": {}}
    for execution_ms in EXECUTION_MS:
        with tempfile.TemporaryDirectory(prefix="rebirth-farm-bench-") as folder:
            measured = fan_out(Path(folder), MODELS["probe"], 8, 2 if args.quick else 5, execution_ms)
        results["fan_out"][f"sleep_{execution_ms:.0f}ms"] = measured
        print(json.dumps(measured["median"], indent=1), f"ratio {measured['wall_ratio']:.3f}", flush=True)
    results["host_analysis_s_per_device"] = {name: host_analysis_s(model) for name, model in MODELS.items()}
    print(json.dumps(results["host_analysis_s_per_device"], indent=1), flush=True)
    if not args.quick:
        write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
