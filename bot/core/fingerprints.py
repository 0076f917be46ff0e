"""Salted 64-bit fingerprints of token sequences: the only trace of message text kept.

They answer one question, "was this exact sequence learned?", for the copy guard and the
retention report; a fingerprint cannot be turned back into text.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

log = logging.getLogger(__name__)

SEPARATOR = "\x1f"


class Fingerprinter:
    """Hashes whole messages and their K-token windows with a per-database salt."""

    def __init__(self, salt: bytes) -> None:
        self._salt = salt

    def _hash(self, tokens: Sequence[str]) -> int:
        digest = hashlib.blake2b(
            SEPARATOR.join(tokens).encode("utf-8"), digest_size=8, key=self._salt
        ).digest()
        return int.from_bytes(digest, "big", signed=True)

    def message(self, tokens: Sequence[str]) -> int:
        """Fingerprint of a whole message's token sequence."""
        return self._hash(["\x02", *tokens])

    def windows(self, tokens: Sequence[str], k: int) -> list[int]:
        """Fingerprints of every run of k consecutive tokens (none when shorter than k)."""
        return [self._hash(tokens[i : i + k]) for i in range(len(tokens) - k + 1)]
