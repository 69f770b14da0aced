"""Files written whole or not at all, and files identified by their bytes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder and a rename: the
    file is either complete or untouched."""
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


def write_temp(folder: Path, text: str, prefix: str = ".", suffix: str = ".tmp") -> Path:
    """A complete, fsync'd hidden temporary file in ``folder`` with the mode ``open()`` would give it;
    removed again if writing fails."""
    handle, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(handle, 0o666 & ~umask)  # as open() would have made it, not mkstemp's 0600
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


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
