"""Build rebirth's native runner (``executor_runner.cpp`` beside this file) against the C++ runtime that
the executorch wheel ships (``executorch/lib``, ``executorch/include``), for this host and, cross-compiled
from the aarch64 wheel, as a self-contained bundle for arm64-v8a phones.

Builds are cached under rebirth's cache (``runners/``), keyed by the source, the build recipe, the
compiler and the runtime they link against; each is made in a temporary name and renamed into place
under a file lock, so two processes starting at once build it once and never see half of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rebirth.contract.cache import cache_root
from rebirth.contract.errors import MissingToolError, RunnerBuildError
from rebirth.contract.files import sha256_file

SOURCE = Path(__file__).with_name("executor_runner.cpp")
RECIPE = 1
"""Bumped when the compile flags or the bundle's layout change, so that older builds are not used."""
ARM64 = "arm64-v8a"
AARCH64_WHEEL_PLATFORM = "manylinux_2_28_aarch64"
AARCH64_SYSROOT = Path("/usr/aarch64-linux-gnu/lib")
LOADER = "ld-linux-aarch64.so.1"
BINARY = "executor_runner.bin"
LAUNCHER = "executor_runner"
REGISTERING = ("executorch_kernels_optimized", "executorch_kernels_quantized", "executorch_backend_xnnpack")
"""Linked with --no-as-needed: nothing calls them, but loading them runs the static initializers that
register the kernels and the XNNPACK backend."""
LIBRARIES = ("executorch_etdump", "executorch_threadpool", "executorch")
GLIBC = (LOADER, "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "libstdc++.so.6", "libgcc_s.so.1")
PACKAGES = {"g++": "g++", "aarch64-linux-gnu-g++": "g++-aarch64-linux-gnu", "qemu-aarch64-static": "qemu-user-static"}
"""The Debian package that provides each tool."""

LAUNCHER_SCRIPT = f"""#!/bin/sh
# rebirth's {ARM64} executor_runner: the runner through the glibc loader and libraries beside this
# script, from wherever the folder is; run it as: sh PATH/{LAUNCHER} ARGS. Off arm64 (an emulated phone)
# it runs under qemu-aarch64-static.
dir=${{0%/*}}
export GLIBC_TUNABLES="${{GLIBC_TUNABLES:-glibc.pthread.rseq=0}}"
case "$(uname -m)" in
  aarch64|arm64|armv8*) exec "$dir/{LOADER}" --library-path "$dir" "$dir/{BINARY}" "$@" ;;
esac
if ! command -v qemu-aarch64-static >/dev/null 2>&1; then
  echo "Error: this device is $(uname -m), not arm64: the {ARM64} runner cannot run here" >&2
  exit 126
fi
exec qemu-aarch64-static "$dir/{LOADER}" --library-path "$dir" "$dir/{BINARY}" "$@"
"""


@dataclass(frozen=True)
class Bundle:
    """The arm64-v8a runner and everything it loads, in one folder to push to a phone."""

    folder: Path
    files: tuple[str, ...]
    """File names in the folder; ``LAUNCHER`` is the one to run (with ``sh``)."""

    def sha256(self) -> dict[str, str]:
        """Each file's sha256, as recorded when the bundle was built."""
        return json.loads((self.folder / "manifest.json").read_text())["sha256"]


def require(tool: str) -> str:
    """The path of ``tool``.

    Raises:
        MissingToolError: it is not installed (the message names the Debian package).
    """
    found = shutil.which(tool)
    if found is None:
        package = PACKAGES.get(tool, tool)
        raise MissingToolError(f"{tool} is not installed: apt-get install {package}")
    return found


def executorch_dir() -> Path:
    """The installed executorch package folder, the one holding ``lib/`` and ``include/``.

    Raises:
        RunnerBuildError: the installed executorch has no C++ runtime.
    """
    folder = Path(str(importlib.metadata.distribution("executorch").locate_file("executorch")))
    if not (folder / "lib" / "libexecutorch.so").is_file() or not (folder / "include" / "executorch").is_dir():
        raise RunnerBuildError(f"{folder}: this executorch has no C++ runtime in lib/ and include/ (rebirth's "
                               "native runner needs the executorch wheel from PyPI)")
    return folder.resolve()


def host_runner() -> Path:
    """rebirth's native runner for this host, built on first use (a few seconds) and cached.

    Raises:
        MissingToolError: no C++ compiler.
        RunnerBuildError: the compiler failed.
    """
    compiler = require("g++")
    runtime = executorch_dir()
    key = _key("host", platform.machine(), str(runtime), _version_of(compiler),
               importlib.metadata.distribution("executorch").read_text("RECORD") or "")
    folder = cache_root() / "runners" / f"host-{platform.machine()}-{key}"
    target = folder / LAUNCHER
    with _locked(folder):
        if not target.is_file():
            with _staging(folder) as staging:
                _compile(_command(compiler, staging / LAUNCHER, runtime, rpath=str(runtime / "lib")))
    return target


def arm64_bundle(say=lambda text: None) -> Bundle:
    """rebirth's arm64-v8a runner with its libraries and glibc's loader, cross-compiled on first use
    against the aarch64 wheel of the installed executorch version (downloaded once) and cached.

    Raises:
        MissingToolError: no cross compiler, or no cross glibc.
        RunnerBuildError: the download or the compiler failed.
    """
    compiler = require("aarch64-linux-gnu-g++")
    version = importlib.metadata.version("executorch")
    key = _key(ARM64, version, _version_of(compiler))
    folder = cache_root() / "runners" / f"{ARM64}-{key}"
    with _locked(folder):
        if not (folder / "manifest.json").is_file():
            say(f"building rebirth's {ARM64} runner (once; cached in {folder})")
            runtime = _aarch64_runtime(version, say)
            with _staging(folder) as staging:
                _assemble(staging, compiler, runtime)
    return Bundle(folder, tuple(json.loads((folder / "manifest.json").read_text())["sha256"]))


def _assemble(staging: Path, compiler: str, runtime: Path) -> None:
    """The bundle in ``staging``: the cross-built runner, the ExecuTorch libraries, glibc, the launcher."""
    _compile(_command(compiler, staging / BINARY, runtime, rpath="$ORIGIN"))
    for name in REGISTERING + LIBRARIES:
        shutil.copyfile(runtime / "lib" / f"lib{name}.so", staging / f"lib{name}.so")
    for name in GLIBC:
        source = (AARCH64_SYSROOT / name).resolve()
        if not source.is_file():
            raise MissingToolError(f"{AARCH64_SYSROOT / name} is missing: apt-get install g++-aarch64-linux-gnu")
        shutil.copyfile(source, staging / name)
    (staging / LAUNCHER).write_text(LAUNCHER_SCRIPT)
    for path in staging.iterdir():
        path.chmod(0o755)
    files = sorted(path.name for path in staging.iterdir())
    manifest = {"abi": ARM64, "recipe": RECIPE, "sha256": {name: sha256_file(staging / name) for name in files}}
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))


def _aarch64_runtime(version: str, say) -> Path:
    """``lib/`` and ``include/`` of the aarch64 wheel of executorch ``version``, downloaded and unpacked once."""
    root = cache_root() / "runners" / "wheels"
    unpacked = root / f"executorch-{version}-aarch64"
    with _locked(unpacked):
        if not (unpacked / "lib" / "libexecutorch.so").is_file():
            wheel = _download_wheel(root, version, say)
            with _staging(unpacked) as staging, zipfile.ZipFile(wheel) as archive:
                for name in archive.namelist():
                    if name.startswith(("executorch/lib/lib", "executorch/include/")) and not name.endswith("/"):
                        archive.extract(name, staging)
                for part in (staging / "executorch").iterdir():
                    part.rename(staging / part.name)
    return unpacked


def _download_wheel(root: Path, version: str, say) -> Path:
    pattern = f"executorch-{version}-*{AARCH64_WHEEL_PLATFORM}.whl"
    found = sorted(root.glob(pattern))
    if found:
        return found[-1]
    say(f"downloading the aarch64 wheel of executorch {version} from the package index")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    _compile([sys.executable, "-m", "pip", "download", f"executorch=={version}", "--no-deps",
              "--only-binary=:all:", "--platform", AARCH64_WHEEL_PLATFORM, "--python-version", python,
              "--quiet", "-d", str(root)], what="pip download")
    found = sorted(root.glob(pattern))
    if not found:
        raise RunnerBuildError(f"pip downloaded no {pattern} into {root}")
    return found[-1]


def _command(compiler: str, output: Path, runtime: Path, rpath: str) -> list[str]:
    include, lib = runtime / "include", runtime / "lib"
    return [compiler, "-std=c++17", "-O2", "-DET_EVENT_TRACER_ENABLED", "-DC10_USING_CUSTOM_GENERATED_MACROS",
            f"-I{include}", f"-I{include}/executorch/runtime/core/portable_type/c10", str(SOURCE), "-o", str(output),
            f"-L{lib}", "-Wl,--no-as-needed", *(f"-l{name}" for name in REGISTERING), "-Wl,--as-needed",
            *(f"-l{name}" for name in LIBRARIES), f"-Wl,-rpath,{rpath}"]


def _compile(command: list[str], what: str = "") -> float:
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise RunnerBuildError(f"{what or Path(command[0]).name} failed (exit {done.returncode}): "
                               f"{lines[-1] if lines else 'no output'}")
    return time.monotonic() - start


def _key(*parts: str) -> str:
    digest = hashlib.sha256(SOURCE.read_bytes())
    for part in (str(RECIPE), *parts):
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def _version_of(compiler: str) -> str:
    done = subprocess.run([compiler, "--version"], capture_output=True, text=True)
    return done.stdout.splitlines()[0] if done.stdout else compiler


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``TARGET.lock`` (beside ``target``) while building it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target`` that becomes ``target`` when the block succeeds."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        staging.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
