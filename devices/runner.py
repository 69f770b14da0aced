"""rebirth's runner: ExecuTorch's ``executor_runner`` contract over the Python pybindings.

Run as its own process so that its memory is measured apart from the CLI's::

    python -m rebirth.devices.runner --model_path m.pte --num_executions 20 --etdump_path m.etdp \
        --cpu_threads 2 --warmup 3

It accepts the native runner's flags and prints the native runner's log lines: ExecuTorch's two
("Model loaded in %f ms." and "Model executed successfully N time(s) in %f ms."), and those
rebirth's runners add and parsers treat as optional: the load's phases ("Program loaded in",
"Method loaded in"), the resident memory before the model is loaded and at the end, and one
line per execution. ``--warmup W``
runs W more executions first; they are traced too (an ETDump cannot be paused), and
whoever reads the ETDump drops the first W samples.
"""

from __future__ import annotations

import argparse
import sys
import time

from rebirth.devices.procstatus import status_kib
from rebirth.devices.runlog import EXIT_LOAD_FAILED, EXIT_RUN_FAILED

# ExecuTorch ScalarType codes -> torch dtype names.
SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16",
                6: "float32", 7: "float64", 11: "bool", 15: "bfloat16"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rebirth.devices.runner", description=__doc__.split("\n")[0])
    parser.add_argument("--model_path", required=True)
    parser.add_argument("--num_executions", type=int, default=1)
    parser.add_argument("--etdump_path", default="etdump.etdp")
    parser.add_argument("--cpu_threads", type=int, default=-1)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--no_etdump", action="store_true", help="run without the event tracer")
    return parser.parse_args(argv)


def load_runtime():
    """ExecuTorch's C++ runtime bindings.

    ``portable_lib`` is a thin re-export of the ``_C`` extension, but it first imports
    ``executorch.exir`` (the compiler, ~8 s) for one warning class; the extension itself needs
    only torch's libraries loaded. A native executor_runner starts in milliseconds, so this
    runner takes the short path, and the documented module where the layout differs.
    """
    try:
        import torch  # noqa: F401  (loads the libraries _C links against)
        from executorch.extension.pybindings import _C

        return _C
    except ImportError:
        from executorch.extension.pybindings import portable_lib

        return portable_lib


def make_inputs(module):
    """Tensors of ones for a loaded module's ``forward``."""
    return inputs_of(module.method_meta("forward"))


def inputs_of(meta):
    """Tensors of ones of a method's input shapes and types."""
    import torch

    inputs = []
    for index in range(meta.num_inputs()):
        tensor = meta.input_tensor_meta(index)
        dtype = getattr(torch, SCALAR_TYPES.get(tensor.dtype(), "float32"))
        inputs.append(torch.ones(tuple(tensor.sizes()), dtype=dtype))
    return tuple(inputs)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    portable_lib = load_runtime()

    if args.cpu_threads > 0:
        portable_lib._unsafe_reset_threadpool(args.cpu_threads)
    print(f"Threads: {portable_lib._threadpool_get_thread_count()}", flush=True)
    print(f"Baseline RSS: {(status_kib('VmRSS') or 0) * 1024} bytes", flush=True)
    start = time.perf_counter()
    try:
        program = portable_lib._load_program(args.model_path, enable_etdump=not args.no_etdump, debug_buffer_size=0,
                                             program_verification=portable_lib.Verification.InternalConsistency)
        loaded = time.perf_counter()
        method = program.load_method(program.get_method_name(0))
        method_ms = (time.perf_counter() - loaded) * 1000
        inputs = inputs_of(method.method_meta())
    except Exception as error:
        print(f"Error: loading {args.model_path} failed: {error}", file=sys.stderr, flush=True)
        return EXIT_LOAD_FAILED
    print(f"Program loaded in {(loaded - start) * 1000:f} ms.", flush=True)
    print(f"Method loaded in {method_ms:f} ms.", flush=True)
    print(f"Model loaded in {(time.perf_counter() - start) * 1000:f} ms.", flush=True)
    total = args.warmup + args.num_executions
    elapsed = 0.0
    for index in range(total):
        begin = time.perf_counter()
        try:
            method.call(inputs)
        except Exception as error:
            print(f"Error: execution {index + 1} failed: {error}", file=sys.stderr, flush=True)
            return EXIT_RUN_FAILED
        took = (time.perf_counter() - begin) * 1000
        elapsed += took if index >= args.warmup else 0.0
        kind = "Warm-up" if index < args.warmup else "Execution"
        print(f"{kind} {index + 1}/{total} in {took:f} ms.", flush=True)
    print(f"Model executed successfully {args.num_executions} time(s) in {elapsed:f} ms.", flush=True)
    if not args.no_etdump:
        program.write_etdump_result_to_file(args.etdump_path)
    print(f"Peak RSS: {(status_kib('VmHWM') or 0) * 1024} bytes", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
