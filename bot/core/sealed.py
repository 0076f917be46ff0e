"""Recent messages sealed with the fingerprint key: the database alone cannot read them back.

A recent message (kept as token ids for the edit window, see bot.core.store) is encrypted and
authenticated with ChaCha20-Poly1305 under a key derived from the fingerprint key, which lives
outside the database (bot.core.keys). The row's key (bot.core.messagekeys: of its platform and
message id) is authenticated too, so a row moved to another message does not open. Rows sealed
before migration 0011 are bound to the platform and message id themselves, which open() is given.
"""

from __future__ import annotations

import hashlib
import logging
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

log = logging.getLogger(__name__)

NONCE_BYTES = 12
TAG_BYTES = 16


class Sealer:
    """Seals and opens recent messages' token ids with a key derived from the fingerprint key."""

    def __init__(self, fingerprint_key: bytes, person: bytes = b"markovbot-recent") -> None:
        # person: what the derived key seals (16 bytes at most); another person's sealer opens none of it
        key = hashlib.blake2b(b"", key=fingerprint_key, digest_size=32, person=person).digest()
        self._cipher = ChaCha20Poly1305(key)  # 1.3 µs a seal; pycryptodome's took 20

    def seal(self, key: int, data: bytes, bound: bytes | None = None) -> bytes:
        """nonce + ciphertext + tag of data, bound to the message's key (or to bound: id_bound, as before 0011)."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._cipher.encrypt(nonce, data, key_bound(key) if bound is None else bound)

    def open(self, key: int, sealed: bytes, message: tuple[str, str] | None = None) -> bytes | None:
        """The data sealed for this message, or None when the blob is not one (another key, tampered).

        message: its (platform, message id), which a row sealed before migration 0011 is bound to.
        """
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            return None
        for bound in (key_bound(key), *([id_bound(*message)] if message is not None else [])):
            try:
                return self._cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], bound)
            except InvalidTag:
                continue
        return None


def key_bound(key: int) -> bytes:
    """What a row is bound to: its message key."""
    return b"key\x1f" + key.to_bytes(8, "big", signed=True)


def id_bound(platform: str, message_id: str) -> bytes:
    """What a row sealed before migration 0011 is bound to: its platform and message id."""
    return f"{platform}\x1f{message_id}".encode("utf-8", "surrogatepass")
