"""Keyed 64-bit fingerprints of token sequences: the only trace of message text kept.

They answer one question, "was this sequence learned?", for the copy guard and the retention
report; without the key (bot.core.keys, kept outside the database) they confirm nothing.

Each chain records the scheme its fingerprints were made with:

- scheme 1 (chains learned before the normalised guard): windows are of the tokens as written,
  so the guard catches exact copies only;
- scheme 2: windows are of normalised tokens (NFKC, case-folded), and each message also has
  the fingerprint of its normalised tokens with trailing punctuation dropped (messages.normal,
  and an entry of its author among the chain's windows, where it is looked up), so a copy that
  differs only in letter case, compatibility forms or final punctuation is caught too, and the
  retention report counts how often a message was said up to that normalisation.

In both, messages.fingerprint is of the exact tokens: unlearning checks it, so a text that only
normalises like the learned one is never subtracted in its place.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import struct
import unicodedata
from collections.abc import Sequence

log = logging.getLogger(__name__)

SEPARATOR = "\x1f"
WHOLE = "\x02"  # first element of a whole message's hashed sequence; no token holds it
EXACT, NORMALISED = 1, 2  # the schemes
CURRENT = NORMALISED  # the scheme of chains created now


def normalise(tokens: Sequence[str]) -> list[str]:
    """Each token NFKC-normalised and case-folded (one token in, one token out)."""
    # Done on the joined tokens at once (3x faster): the separator is a starter that no form
    # of a token contains, so nothing composes or reorders across it.
    text = SEPARATOR.join(tokens)
    text = text.lower() if text.isascii() else unicodedata.normalize("NFKC", text).casefold()
    return text.split(SEPARATOR) if tokens else []


@functools.lru_cache(maxsize=1 << 14)  # a chain's last tokens are mostly a few: ".", "?", "lol"
def _is_punctuation(token: str) -> bool:
    return all(unicodedata.category(c).startswith("P") for c in token)


def trimmed(tokens: Sequence[str]) -> Sequence[str]:
    """Tokens without trailing punctuation tokens (kept when there is nothing else)."""
    end = len(tokens)
    while end and _is_punctuation(tokens[end - 1]):
        end -= 1
    return tokens[:end] if end else tokens


class Fingerprinter:
    """Hashes whole messages and their K-token windows with a key kept outside the database."""

    def __init__(self, key: bytes) -> None:
        # The key fills BLAKE2b's first block: hashed once here, and each hash starts from a copy.
        self._keyed = hashlib.blake2b(digest_size=8, key=key)

    def _digests(self, parts: Sequence[bytes]) -> tuple[int, ...]:
        """The keyed 64-bit hash of each part, as signed integers (big-endian digests)."""
        copy = self._keyed.copy
        digests = []
        for part in parts:
            h = copy()
            h.update(part)
            digests.append(h.digest())
        return struct.unpack(f">{len(digests)}q", b"".join(digests))

    def _hash(self, tokens: Sequence[str]) -> int:
        h = self._keyed.copy()
        h.update(SEPARATOR.join(tokens).encode("utf-8"))
        return int.from_bytes(h.digest(), "big", signed=True)

    def message(self, tokens: Sequence[str]) -> int:
        """Fingerprint of a whole message's exact token sequence."""
        return self._hash([WHOLE, *tokens])

    def windows(self, tokens: Sequence[str], k: int) -> list[int]:
        """Fingerprints of every run of k consecutive tokens (none when shorter than k)."""
        n = len(tokens) - k + 1
        if n <= 0:
            return []
        # The tokens joined and encoded once; each window is a slice of those bytes: token i starts
        # at the length of the tokens before it plus i separators.
        text = SEPARATOR.join(tokens)
        data = text.encode("utf-8")
        sizes = map(len, tokens) if len(data) == len(text) else (len(t.encode()) for t in tokens)
        before = list(itertools.accumulate(sizes, initial=0))
        return list(self._digests([data[before[i] + i : before[i + k] + i + k - 1] for i in range(n)]))

    def guarded(self, tokens: Sequence[str], k: int, scheme: int) -> tuple[int | None, list[int]]:
        """What the guard looks up: (the normalised whole message, or None under scheme 1; K-runs)."""
        if scheme == EXACT:
            return None, self.windows(tokens, k)
        normal = normalise(tokens)
        return self.message(trimmed(normal)), self.windows(normal, k)

    def whole(self, tokens: Sequence[str], scheme: int) -> int:
        """The fingerprint a chain counts a whole message by: normalised under scheme 2, else exact."""
        if scheme == EXACT:
            return self.message(tokens)
        return self.message(trimmed(normalise(tokens)))
