"""`rebirth devices list|info|check|emulate`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(commands) -> None:
    devices = commands.add_parser("devices", help="devices and the emulated phone",
                                  description="Devices and the emulated phone.")
    actions = devices.add_subparsers(dest="device_command", required=True, metavar="ACTION")
    actions.add_parser("list", help="the inventory (devices.toml) and reachable devices, with status",
                       description="List local, the devices of devices.toml with their status, and the phones a "
                       "running adb server knows.").set_defaults(handler=cmd_list)
    info = actions.add_parser("info", help="model, SoC, ABI, Android, cores and clocks, temperatures, battery",
                              description="Describe a device.")
    info.add_argument("name", help="a device name (local, or one of devices.toml)")
    info.set_defaults(handler=cmd_info)
    check = actions.add_parser("check", help="reachable, authorized, runner present and built with the event tracer",
                               description="Check that a device can be profiled.")
    check.add_argument("name", help="a device name (local, or one of devices.toml)")
    check.add_argument("--no-probe", action="store_true",
                       help="skip the probe run that checks the runner writes an ETDump")
    check.set_defaults(handler=cmd_check)
    emulate = actions.add_parser(
        "emulate", help="start an emulated phone (an adbd on 127.0.0.1) until interrupted",
        description="Start an emulated phone: an adbd on 127.0.0.1 that Debian's adb client can connect to.")
    emulate.add_argument("--port", type=int, default=5555)
    emulate.add_argument("--phone", default="galaxy-s6", help="phone profile (galaxy-s6, pixel-7)")
    emulate.add_argument("--root", type=Path, default=None, help="the phone's file system (default: a temp folder)")
    emulate.add_argument("--auth", action="store_true",
                         help="require RSA authentication (needed to listen beyond loopback)")
    emulate.add_argument("--authorized-keys", type=Path, action="append", default=None, metavar="FILE",
                         help="adbkey.pub-style file of keys to let in with --auth (default: this user's "
                         "~/.android/adbkey.pub)")
    emulate.add_argument("--host", default="127.0.0.1",
                         help="address to listen on (default: 127.0.0.1; anything else needs --auth)")
    emulate.add_argument("--abi", default=None, choices=("arm64-v8a",),
                         help="arm64-v8a: a phone whose CPU qemu-user emulates, with no runner of its own, so that "
                              "rebirth pushes its arm64 runner as to a real phone (timings mean nothing); default: "
                              "this host's ABI, the phone running rebirth's host runner")
    emulate.add_argument("--hot", type=float, default=None, metavar="°C",
                         help="start this hot (above 45 °C its clocks throttle until it cools; default: 35 °C)")
    emulate.add_argument("--unplugged", action="store_true",
                         help="on battery, as a phone over Wi-Fi ADB: its fuel gauge then gives the energy per "
                              "inference (default: on USB, charging, until `dumpsys battery unplug`)")
    emulate.add_argument("--no-body", action="store_true",
                         help="fixed temperatures, clocks and battery instead of a heat model and a fuel gauge")
    emulate.set_defaults(handler=cmd_emulate)
    runner = actions.add_parser("runner", help="rebirth's native runner",
                                description="rebirth's native runner (ExecuTorch's executor_runner command line).")
    build = runner.add_subparsers(dest="runner_command", required=True, metavar="ACTION").add_parser(
        "build", help="build (or find in the cache) rebirth's runner for this host or for arm64-v8a phones",
        description="Build rebirth's native runner against the installed executorch's C++ runtime: for this host, "
                    "or, cross-compiled from the aarch64 wheel, as a bundle for arm64-v8a phones (pushed to a phone "
                    "the first time it is profiled). Cached; a second call prints where it is.")
    build.add_argument("--abi", default="host", choices=("host", "arm64-v8a"))
    build.set_defaults(handler=cmd_runner_build)


def cmd_list(args: argparse.Namespace) -> int:
    from rebirth.devices import list_devices
    from rebirth.devices.inventory import inventory_path
    from rebirth.reports import render_device_list

    render_device_list(list_devices(), str(inventory_path() or "no devices.toml"))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from rebirth.devices import device_report
    from rebirth.reports import render_device

    render_device(device_report(args.name))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from rebirth.contract import ExitStatus
    from rebirth.reports import check_lines
    from rebirth.usecases.devices import check

    items = check(args.name, probe=not args.no_probe, say=lambda text: print(f"… {text}", file=sys.stderr, flush=True))
    for line in check_lines(items):
        print(line)
    return ExitStatus.OK if all(item.ok for item in items) else ExitStatus.NO_ANSWER


def cmd_emulate(args: argparse.Namespace) -> int:
    import threading

    from rebirth.devices import EmulatorOptions, start_emulator

    options = EmulatorOptions(args.phone, args.port, args.host, args.root, args.auth, tuple(args.authorized_keys or ()),
                              args.abi, body=not args.no_body, start_c=args.hot, plugged=not args.unplugged)
    phone = start_emulator(options)
    keys = phone.keys
    auth = f", RSA authentication on ({len(keys)} key{'s' if len(keys) != 1 else ''})" if keys else ""
    cpu = (f", {phone.sandbox.abi} CPU emulated by qemu (timings mean nothing)" if phone.sandbox.emulated_cpu
           else f", {phone.sandbox.abi}")
    body = phone.sandbox.physics
    state = "" if body is None else \
        f", {phone.sandbox.body.temperature_c:.0f} °C, {'on USB (charging)' if body.plugged else 'on battery'}"
    print(f"emulated {args.phone}{cpu}{state} listening on {phone.address}{auth}, file system in "
          f"{phone.sandbox.root}; try: adb connect {phone.address}", flush=True)
    print(f"to profile on it, put in devices.toml:  [devices.s6]  address = \"{phone.address}\"  "
          "(two lines), then: rebirth-profile --device s6 MODEL", flush=True)
    threading.Event().wait()
    return 0


def cmd_runner_build(args: argparse.Namespace) -> int:
    import time

    from rebirth.devices import build_runner

    start = time.monotonic()
    path, size = build_runner(args.abi, say=lambda text: print(f"… {text}", file=sys.stderr, flush=True))
    print(f"rebirth's {args.abi} runner: {path} ({size / 1e6:.1f} MB; {time.monotonic() - start:.1f} s)")
    return 0
