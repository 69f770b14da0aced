"""This computer's ADB key pair: ``~/.android/adbkey`` and ``adbkey.pub``, as adb keeps them.

The private key is read by the signer and never printed or logged; only its path is shown.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Optional


def key_path() -> Path:
    """Where adb keeps the private key: ``$ANDROID_USER_HOME/adbkey``, else ``~/.android/adbkey``."""
    home = os.environ.get("ANDROID_USER_HOME")
    return Path(home) / "adbkey" if home else Path.home() / ".android" / "adbkey"


_generating = threading.Lock()


def ensure_key(path: Optional[Path] = None, say: Callable[[str], None] = lambda text: print(text, file=sys.stderr)
               ) -> Path:
    """The private key's path; a new pair (private key mode 0600) is generated when missing.

    The pair is made in a private folder (mode 0700) and moved into place, public key first: no other user can
    read the private key at any moment, and the process umask is never changed (farm workers write files in
    other threads meanwhile). One thread generates at a time, so two workers cannot mix two pairs.
    """
    path = path or key_path()
    public = path.with_name(path.name + ".pub")
    with _generating:
        if path.exists() and public.exists():
            return path
        from adb_shell.auth.keygen import keygen

        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".adbkey-") as private:
            made = Path(private) / path.name
            keygen(str(made))
            os.chmod(made, 0o600)
            os.replace(made.with_name(public.name), public)
            os.replace(made, path)
    say(f"rebirth: generated an ADB key pair in {path} (and {path.name}.pub); "
        "phones ask once to authorize it")
    return path


def signer(path: Optional[Path] = None):
    """An adb-shell signer for the key pair (created when missing)."""
    from adb_shell.auth.sign_pythonrsa import PythonRSASigner

    path = ensure_key(path)
    return PythonRSASigner(path.with_name(path.name + ".pub").read_text(), path.read_text())
