"""A file's pages in this host's page cache: drop them (``posix_fadvise(POSIX_FADV_DONTNEED)``, which needs no
root, only a file one may read) and count them (``mincore``), so that a cold start reads the model from the disk.

The kernel keeps pages that are dirty or that another process has mapped: ``drop`` counts what is left.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path
from typing import Optional

PROT_READ, MAP_SHARED = 0x1, 0x01


def drop(path: Path) -> Optional[str]:
    """Drop ``path``'s pages from the page cache; None when none is left, else why some are."""
    if not hasattr(os, "posix_fadvise"):
        return f"this host ({os.uname().sysname}) has no posix_fadvise"
    try:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)  # dirty pages (a file just written) are not dropped until written back
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)
        left = resident_bytes(path)
    except OSError as error:
        return f"{path.name}: {error.strerror or error}"
    if left:
        return f"{left} bytes of {path.name} stayed in the page cache (mapped by another process?)"
    return None


def resident_bytes(path: Path) -> Optional[int]:
    """How much of ``path`` is in the page cache now (whole pages, at most its size); None where ``mincore``
    cannot be called."""
    size = path.stat().st_size
    if size == 0:
        return 0
    libc = _libc()
    if libc is None:
        return None
    page = os.sysconf("SC_PAGE_SIZE")
    pages = (size + page - 1) // page
    vector = (ctypes.c_ubyte * pages)()
    descriptor = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, PROT_READ, MAP_SHARED, descriptor, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            if libc.mincore(ctypes.c_void_p(address), size, vector) != 0:
                return None
        finally:
            libc.munmap(ctypes.c_void_p(address), size)
    finally:
        os.close(descriptor)
    return min(size, sum(byte & 1 for byte in vector) * page)


def _libc() -> Optional[ctypes.CDLL]:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte))
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    return libc
