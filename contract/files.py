"""Files written whole or not at all, and files identified by their bytes."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any


def write_text_atomic(path: Path, text: str | bytes) -> None:
    """Write ``text`` (UTF-8; bytes as they are) to ``path`` through a temporary file in the same folder and a
    rename: the file is either complete or untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = write_temp(path.parent, text, prefix=f".{path.name}.")
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (NaN is refused, not written)."""
    write_text_atomic(path, json.dumps(data, indent=1, allow_nan=False))


def write_temp(folder: Path, text: str | bytes, prefix: str = ".", suffix: str = ".tmp") -> Path:
    """A complete, fsync'd hidden temporary file in ``folder`` holding ``text`` (UTF-8; bytes as they are), with
    the mode ``open()`` would give it; removed again if writing fails."""
    handle, path = _create(folder, prefix, suffix)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(text.encode() if isinstance(text, str) else text)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _create(folder: Path, prefix: str, suffix: str) -> tuple[int, Path]:
    """A new file under a random name, made as ``open()`` makes one: mode 0666 less the umask (and a folder's
    default ACL), applied by the kernel. tempfile's files are 0600 and it takes no mode; reading the umask
    with ``os.umask`` would change it for every thread of the process for a moment."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(tempfile.TMP_MAX):
        path = folder / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))


def fsync_folder(folder: Path) -> None:
    """Make a rename or link in ``folder`` durable."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
