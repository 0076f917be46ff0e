"""Recent messages' seals: they open only for their own message and key, and rows sealed before still open."""

from __future__ import annotations

import os

from Crypto.Cipher import ChaCha20_Poly1305  # pycryptodome (matrix-nio's), which sealed rows before

from bot.core.messagekeys import message_key
from bot.core.sealed import NONCE_BYTES, Sealer

KEY = bytes(range(32))


def test_a_seal_opens_for_its_message_only() -> None:
    sealer = Sealer(KEY)
    sealed = sealer.seal(message_key("discord", "42"), b"\x00\x00\x00\x07")
    assert sealer.open(message_key("discord", "42"), sealed) == b"\x00\x00\x00\x07"
    assert sealer.open(message_key("discord", "43"), sealed) is None
    assert sealer.open(message_key("matrix", "42"), sealed) is None
    assert Sealer(bytes(32)).open(message_key("discord", "42"), sealed) is None
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    assert sealer.open(message_key("discord", "42"), tampered) is None
    assert sealer.open(message_key("discord", "42"), sealed[:10]) is None


def test_rows_sealed_by_the_previous_library_and_before_0011_still_open() -> None:
    # pycryptodome, bound to the text id: a row as markovbot sealed it before migration 0011.
    import hashlib

    key = hashlib.blake2b(b"", key=KEY, digest_size=32, person=b"markovbot-recent").digest()
    nonce = os.urandom(NONCE_BYTES)
    cipher = ChaCha20_Poly1305.new(key=key, nonce=nonce)
    cipher.update(b"discord\x1f42")
    ciphertext, tag = cipher.encrypt_and_digest(b"\x00\x00\x00\x07\x00\x00\x00\x09")
    old = nonce + ciphertext + tag
    sealer = Sealer(KEY)
    assert (
        sealer.open(message_key("discord", "42"), old, ("discord", "42"))
        == b"\x00\x00\x00\x07\x00\x00\x00\x09"
    )
    assert sealer.open(message_key("discord", "42"), old) is None  # bound to the id, not the key
    assert sealer.open(message_key("discord", "43"), old, ("discord", "43")) is None
