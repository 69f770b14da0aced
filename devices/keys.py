"""This computer's ADB key pair: ``~/.android/adbkey`` and ``adbkey.pub``, as adb keeps them.

The private key is read by the signer and never printed or logged; only its path is shown.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Optional


def key_path() -> Path:
    """Where adb keeps the private key: ``$ANDROID_USER_HOME/adbkey``, else ``~/.android/adbkey``."""
    home = os.environ.get("ANDROID_USER_HOME")
    return Path(home) / "adbkey" if home else Path.home() / ".android" / "adbkey"


def ensure_key(path: Optional[Path] = None, say: Callable[[str], None] = lambda text: print(text, file=sys.stderr)
               ) -> Path:
    """The private key's path; a new pair (private key mode 0600) is generated when missing."""
    path = path or key_path()
    if path.exists() and path.with_name(path.name + ".pub").exists():
        return path
    from adb_shell.auth.keygen import keygen

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    previous = os.umask(0o077)
    try:
        keygen(str(path))
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    say(f"rebirth: generated an ADB key pair in {path} (and {path.name}.pub); "
        "phones ask once to authorize it")
    return path


def signer(path: Optional[Path] = None):
    """An adb-shell signer for the key pair (created when missing)."""
    from adb_shell.auth.sign_pythonrsa import PythonRSASigner

    path = ensure_key(path)
    return PythonRSASigner(path.with_name(path.name + ".pub").read_text(), path.read_text())
