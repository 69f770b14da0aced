"""`rebirth tune` on this host and on the emulated arm64 phone; results go to benchmarks/results/tune.json.

    python benchmarks/tune_bench.py [--model zoo:mobilenet_v2-small] [--budget-s 600] [--phone-budget-s 900]

1. local: every setting of ``--model`` (xnnpack and portable; the host's core sets and thread counts) measured
   side by side against rebirth's default until decided or ``--budget-s`` is spent: the table, the best setting
   and its gain over the default, with the interval. A host without cpufreq has one core set ("all"): big and
   little do not apply there, and the record says so.
2. the emulated arm64 phone (``rebirth devices emulate --abi arm64-v8a``, its CPU emulated by qemu-user, the
   galaxy-s6's 4 + 4 cores): the same command through ADB, rebirth's arm64 runner pushed to it; its timings mean
   nothing (qemu), the path is what is measured: the settings of both clusters, ``--save`` into devices.toml (the
   fastest estimate when no setting is told apart from the default, which qemu's noise makes likely, marked
   ``forced``), and a ``farm run`` that then uses the saved setting (threads, cores, backend read back from the
   stored Profile).

Run it alone: the host's load moves the local numbers as much as the settings do.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, Silent, write_results


class Quiet(Silent):
    """A farm listener that shows nothing, not even the devices it begins with."""

    def begin(self, devices):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def summary(record) -> dict:
    """What the results keep of a TuneRecord: every row, the best and its gain."""
    gain = record.gain
    return {
        "model": record.model, "device": record.device, "reference": str(record.reference),
        "best": str(record.best) if record.best else None,
        "gain": {"speedup": gain[0], "low": gain[1], "high": gain[2]} if gain else None,
        "verdict": record.verdict, "notes": list(record.notes), "blocks": record.blocks,
        "seconds": record.seconds, "precision": record.precision,
        "rows": [{"setting": str(row.setting), "backend": row.setting.backend, "core_set": row.setting.core_set,
                  "cores": list(row.setting.cores), "threads": row.setting.threads, "status": row.status,
                  "runs": row.runs, "p50_ms": row.p50_ms, "ratio": _finite(row.ratio), "low": _finite(row.low),
                  "high": _finite(row.high), "peak_rss_bytes": row.peak_rss_bytes, "energy_mj": row.energy_mj}
                 for row in sorted(record.rows, key=lambda row: row.ratio if not math.isnan(row.ratio) else 1e9)],
    }


def _finite(value: float):
    return value if math.isfinite(value) else None


def tune_local(model: str, budget_s: float) -> dict:
    from rebirth.usecases.tune import TuneOptions, tune

    start = time.perf_counter()
    record = tune(model, TuneOptions(max_seconds=budget_s), stage=lambda text: print(f"  local: {text}"))
    return {**summary(record), "wall_s": time.perf_counter() - start}


def tune_phone(model: str, budget_s: float, folder: Path) -> dict:
    """Tune on the emulated arm64 phone, save the best, then a farm run that should use it."""
    from rebirth.contract.tune import REFERENCE
    from rebirth.devices.inventory import read_inventory
    from rebirth.profiler import ProfileOptions
    from rebirth.results import store
    from rebirth.usecases.farm import Targets, farm_run
    from rebirth.usecases.tune import TuneOptions, save_best, tune

    port = free_port()
    phone = subprocess.Popen([sys.executable, "-m", "rebirth", "devices", "emulate", "--abi", "arm64-v8a", "--port",
                              str(port), "--root", str(folder / "phone")], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    try:
        line = phone.stdout.readline() if phone.stdout else ""
        if "listening" not in line:
            raise RuntimeError(f"the emulated phone did not start: {line!r}")
        cwd = folder / "cwd"
        cwd.mkdir()
        os.chdir(cwd)
        Path("devices.toml").write_text(f'# the emulated arm64 phone\n[devices.s6]\naddress = "127.0.0.1:{port}"\n')
        start = time.perf_counter()
        record = tune(model, TuneOptions(device="s6", max_seconds=budget_s, warmup=1, iterations=3),
                      stage=lambda text: print(f"  s6: {text}"))
        result = {**summary(record), "wall_s": time.perf_counter() - start}
        written = save_best(record)
        forced = written is None  # qemu's noise rarely tells settings apart: save the fastest estimate, for the path
        if forced:
            fastest = min((row for row in record.rows if row.status != REFERENCE and math.isfinite(row.ratio)),
                          key=lambda row: row.ratio)
            written = save_best(dataclasses.replace(record, best=fastest.setting))
        saved = read_inventory(Path("devices.toml")).devices["s6"]
        result["saved"] = {"file": str(written) if written else None, "threads": saved.threads,
                           "cpu_mask": saved.cpu_mask, "backend": saved.backend, "forced": forced,
                           "comment_kept": Path("devices.toml").read_text().startswith("# the emulated")}
        runs = farm_run(model, Targets(("s6",)), str(cwd / "results"), ProfileOptions(warmup=1, iterations=3),
                        Quiet())
        stored = store.list_runs(cwd / "results")
        used = stored[0].profile if stored else None
        result["farm_run"] = {
            "ok": all(run.ok for run in runs), "error": next((run.error for run in runs if not run.ok), None),
            "backend": used.model.backend if used else None,
            "threads": used.settings.threads if used else None,
            "cpu_affinity": used.settings.cpu_affinity if used else None,
            "uses_saved": bool(used and written and (used.settings.threads, used.settings.cpu_affinity,
                                                     used.model.backend) == (saved.threads, saved.cpu_mask,
                                                                            saved.backend or "xnnpack")),
        }
        return result
    finally:
        os.chdir(ROOT)
        phone.terminate()
        phone.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="zoo:mobilenet_v2-small")
    parser.add_argument("--phone-model", default=None, help="the model on the emulated phone (default: --model)")
    parser.add_argument("--budget-s", type=float, default=600.0, help="the local tune's budget (default: 600)")
    parser.add_argument("--phone-budget-s", type=float, default=900.0,
                        help="the emulated phone's tune's budget (default: 900; qemu is slow)")
    parser.add_argument("--only", choices=("local", "phone"), default=None)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "tune.json")
    args = parser.parse_args()
    results: dict = {"model": args.model}
    if args.only in (None, "local"):
        print(f"tuning {args.model} on local, budget {args.budget_s:g} s")
        results["local"] = tune_local(args.model, args.budget_s)
        print(results["local"]["verdict"])
    if args.only in (None, "phone"):
        model = args.phone_model or args.model
        print(f"tuning {model} on the emulated arm64 phone, budget {args.phone_budget_s:g} s")
        with tempfile.TemporaryDirectory(prefix="tune-bench-") as folder:
            results["arm64_qemu"] = tune_phone(model, args.phone_budget_s, Path(folder))
        print(results["arm64_qemu"]["verdict"])
    write_results(args.output, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
