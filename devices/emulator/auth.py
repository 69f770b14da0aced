"""The phone side of ADB's RSA authentication, as adbd does it.

After the host's CNXN, a phone that requires authentication sends ``AUTH TOKEN`` with 20
random bytes. The host signs the token with each private key it has (``AUTH SIGNATURE``);
adbd checks each signature against its authorized public keys (``adb_keys``) and answers a
good one with CNXN, a bad one with a fresh token. When the host runs out of keys it sends
``AUTH RSAPUBLICKEY``: a real phone asks its user, the emulator accepts it only when the
key is already authorized (no one is there to tap "Allow"), so an unknown host stays
``unauthorized`` as it would on a locked phone.

Keys use Android's ``RSAPublicKey`` layout, base64-encoded, one per line, followed by an
optional ``user@host`` comment (the format of ``~/.android/adbkey.pub`` and ``adb_keys``).
A signature is RSA PKCS#1 v1.5 over the token wrapped in SHA-1's DigestInfo: the token is
used as if it were a SHA-1 digest.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

TOKEN, SIGNATURE, RSAPUBLICKEY = 1, 2, 3
TOKEN_SIZE = 20
MODULUS_WORDS = 64
_KEY = struct.Struct(f"<II{MODULUS_WORDS * 4}s{MODULUS_WORDS * 4}sI")
_SHA1_DIGEST_INFO = bytes.fromhex("3021300906052b0e03021a05000414")


@dataclass(frozen=True)
class PublicKey:
    """An RSA public key as adb sends it."""

    modulus: int
    exponent: int
    comment: str = ""

    def verify(self, token: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's PKCS#1 v1.5 signature of ``token`` as a SHA-1 digest."""
        size = (self.modulus.bit_length() + 7) // 8
        if len(signature) != size or len(token) != TOKEN_SIZE:
            return False
        value = int.from_bytes(signature, "big")
        if value >= self.modulus:
            return False
        padded = pow(value, self.exponent, self.modulus).to_bytes(size, "big")
        body = _SHA1_DIGEST_INFO + token
        return padded == b"\x00\x01" + b"\xff" * (size - 3 - len(body)) + b"\x00" + body


def parse_key(line: str | bytes) -> PublicKey:
    """One ``adbkey.pub`` line -> PublicKey.

    Raises:
        ValueError: the line is not an Android RSA public key.
    """
    text = line.decode(errors="replace") if isinstance(line, bytes) else line
    encoded, _, comment = text.strip().strip("\0").partition(" ")
    try:
        raw = base64.b64decode(encoded, validate=True)
        words, _n0inv, modulus, _rr, exponent = _KEY.unpack(raw)
    except (binascii.Error, struct.error) as error:
        raise ValueError(f"not an Android RSA public key ({error})") from None
    if words != MODULUS_WORDS:
        raise ValueError(f"unexpected modulus size of {words} words")
    return PublicKey(int.from_bytes(modulus, "little"), exponent, comment.strip())


def read_keys(paths: Iterable[Path]) -> list[PublicKey]:
    """Every key in the given ``adb_keys``-style files (one key per line)."""
    keys = []
    for path in paths:
        for line in Path(path).read_text().splitlines():
            if line.strip():
                keys.append(parse_key(line))
    return keys
