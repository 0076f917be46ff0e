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
  retention report counts how often a message was said up to that normalisation;
- scheme 3 (chains created now): what scheme 2 fingerprints, made another way so that a batch of
  messages is fingerprinted at once with numpy (an import's bulk: per window and per message, a
  keyed hash in Python took most of the time it spent preparing text). Each distinct token's
  normalised form is hashed once with the key (BLAKE2b, 64 bits); a run of K tokens is the sum of
  its tokens' hashes times powers of a keyed odd multiplier (mod 2^64), a message's form the same
  over its trimmed tokens plus a tag and its length; and each such sum is finished by SipHash-1-3
  under another part of the key (bot.core.siphash), so a stored value says nothing without it.

In all three, messages.fingerprint is of the exact tokens: unlearning checks it, so a text that only
normalises like the learned one is never subtracted in its place.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import operator
import struct
import threading
import unicodedata
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from bot.core import siphash
from bot.core.columns import Ints, indexed

log = logging.getLogger(__name__)

SEPARATOR = "\x1f"
WHOLE = "\x02"  # first element of a whole message's hashed sequence; no token holds it
EXACT, NORMALISED, PER_TOKEN = 1, 2, 3  # the schemes
CURRENT = PER_TOKEN  # the scheme of chains created now
TOKEN = b"\x03"  # first byte of a token's hashed form under scheme 3
FORM_TAG = 1 << 32  # added to a message form's sum under scheme 3 (a run's adds nothing), with its length
TOKENS_KEPT = 1 << 18  # distinct tokens whose hashes a fingerprinter keeps (then it starts over)
ONE_BY_ONE = 24  # fingerprints a message makes up to which Python is faster than numpy (scheme 3)


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
        self._tokens = _TokenHashes(self._keyed)
        sip = hashlib.blake2b(b"\x04siphash", digest_size=16, key=key).digest()
        self._sip = (int.from_bytes(sip[:8], "little"), int.from_bytes(sip[8:], "little"))
        r = int.from_bytes(hashlib.blake2b(b"\x05multiplier", digest_size=8, key=key).digest(), "little")
        self._powers = _Powers(r & ~7 | 3)  # r = 3 mod 8: see _Powers

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

    def messages(self, messages: Sequence[Sequence[str]]) -> Ints:
        """message() of each message."""
        copy, lead = self._keyed.copy, WHOLE + SEPARATOR
        digests = []
        for tokens in messages:
            h = copy()
            h.update((lead + SEPARATOR.join(tokens) if tokens else WHOLE).encode("utf-8"))
            digests.append(h.digest())
        return np.frombuffer(b"".join(digests), dtype=">i8").astype(np.int64)

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
        if scheme == PER_TOKEN:
            if len(tokens) - k + 2 > ONE_BY_ONE:
                return self.guarded_many([tokens], k)[0]
            return self._guarded_one(tokens, k)
        normal = normalise(tokens)
        return self.message(trimmed(normal)), self.windows(normal, k)

    def whole(self, tokens: Sequence[str], scheme: int) -> int:
        """The fingerprint a chain counts a whole message by: normalised under schemes 2 and 3, else exact."""
        if scheme == EXACT:
            return self.message(tokens)
        if scheme == PER_TOKEN:
            hashes, end = self._trimmed_hashes(tokens)
            return self._finish(self._sum(hashes[:end]) + FORM_TAG + end)
        return self.message(trimmed(normalise(tokens)))

    # ---------------------------------------------------------------- scheme 3

    def _finish(self, total: int) -> int:
        """A scheme-3 sum (mod 2^64) made a fingerprint: SipHash under the key, as a signed integer."""
        value = siphash.one(self._sip, total & siphash.MASK)
        return value - (1 << 64) if value >> 63 else value

    def _sum(self, hashes: Sequence[int]) -> int:
        """Sum of hashes[i] * r^(i+1) (not reduced)."""
        return sum(map(operator.mul, hashes, self._powers.ints(len(hashes))))

    def _trimmed_hashes(self, tokens: Sequence[str]) -> tuple[list[int], int]:
        """The tokens' hashes, and how many are left without trailing punctuation (all when none would be)."""
        hashes, punctuation = self._tokens.of(tokens)
        end = len(tokens)
        while end and punctuation[end - 1]:
            end -= 1
        return hashes.tolist(), end or len(tokens)

    def _guarded_one(self, tokens: Sequence[str], k: int) -> tuple[int, list[int]]:
        hashes, end = self._trimmed_hashes(tokens)
        runs = [self._finish(self._sum(hashes[i : i + k])) for i in range(len(hashes) - k + 1)]
        return self._finish(self._sum(hashes[:end]) + FORM_TAG + end), runs

    def guarded_many(self, messages: Sequence[Sequence[str]], k: int) -> list[tuple[int, list[int]]]:
        """guarded() under scheme 3 of each message (each of at least one token), with numpy at once."""
        if not messages:
            return []
        vocab, tokens = indexed(list(itertools.chain.from_iterable(messages)))
        lengths = np.fromiter(map(len, messages), dtype=np.int64, count=len(messages))
        forms, count, runs = self.guarded_columns(vocab, tokens, lengths, k)
        done = runs.tolist()
        out: list[tuple[int, list[int]]] = []
        at = 0
        for form, n in zip(forms.tolist(), count.tolist(), strict=True):
            out.append((form, done[at : at + n]))
            at += n
        return out

    def guarded_columns(
        self, vocab: Sequence[str], tokens: Ints, lengths: Ints, k: int
    ) -> tuple[Ints, Ints, Ints]:
        """guarded_many() of messages given as columns (bot.core.columns: a vocabulary, each token's index
        in it, each message's length): each message's form, each one's count of runs, and all the runs."""
        if not len(lengths):
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, empty
        distinct, punctuated = self._tokens.of(vocab)  # each distinct token hashed once
        hashes, punctuation = distinct[tokens], punctuated[tokens]
        if not lengths.min():
            raise ValueError("a message without tokens has no fingerprints")
        starts = np.cumsum(lengths) - lengths
        place = np.arange(len(tokens)) - np.repeat(starts, lengths)  # each token's place in its message
        powers = self._powers.array(max(int(lengths.max()), k))
        # A form: its tokens up to the last that is not punctuation (all when every one is).
        kept = np.maximum.reduceat(np.where(punctuation, 0, place + 1), starts)
        kept = np.where(kept == 0, lengths, kept)
        weighted = np.where(place < np.repeat(kept, lengths), hashes * powers[place], np.uint64(0))
        forms = np.add.reduceat(weighted, starts) + kept.astype(np.uint64) + np.uint64(FORM_TAG)
        # Runs: the K tokens from each start that leaves K in its message.
        count = np.maximum(lengths - k + 1, 0)
        first = np.repeat(starts - (np.cumsum(count) - count), count) + np.arange(int(count.sum()))
        runs = np.zeros(len(first), dtype=np.uint64)
        for j in range(k):
            runs += hashes[first + j] * powers[j]
        done = siphash.many(self._sip, np.concatenate([forms, runs])).view(np.int64)
        return done[: len(lengths)], count, done[len(lengths) :]


class _TokenHashes:
    """Each distinct token's keyed hash (of its normalised form) and whether that form is punctuation."""

    def __init__(self, keyed: hashlib.blake2b) -> None:
        self._keyed = keyed
        self._lock = threading.Lock()  # a fingerprinter may be shared by threads (a report's)
        self._index: dict[str, int] = {}
        self._hashes = np.empty(1024, dtype=np.uint64)
        self._punctuation = np.empty(1024, dtype=bool)

    def of(self, tokens: Sequence[str]) -> tuple[siphash.Words, npt.NDArray[np.bool_]]:
        """Each token's hash, and whether its form is punctuation (hashing those not met before)."""
        with self._lock:
            self._add(tokens)
            which = np.fromiter(map(self._index.__getitem__, tokens), dtype=np.int64, count=len(tokens))
            return self._hashes[which], self._punctuation[which]

    def _add(self, tokens: Sequence[str]) -> None:
        new = [t for t in dict.fromkeys(tokens) if t not in self._index]
        if not new:
            return
        if len(self._index) + len(new) > TOKENS_KEPT:  # start over (memory stays bounded)
            self._index.clear()
            new = list(dict.fromkeys(tokens))
        start, end = len(self._index), len(self._index) + len(new)
        if end > len(self._hashes):
            size = max(end, 2 * len(self._hashes))
            self._hashes = np.resize(self._hashes, size)
            self._punctuation = np.resize(self._punctuation, size)
        copy = self._keyed.copy
        forms = normalise(new)
        hashes = []
        for form in forms:
            h = copy()
            h.update(TOKEN + form.encode("utf-8"))
            hashes.append(h.digest())
        self._hashes[start:end] = np.frombuffer(b"".join(hashes), dtype="<u8")
        self._punctuation[start:end] = [_is_punctuation(form) for form in forms]
        self._index.update(zip(new, range(start, end), strict=True))


class _Powers:
    """r, r^2, r^3, ... (mod 2^64) of a keyed multiplier r, as many as asked for so far.

    r = 3 mod 8 keeps r and every difference of its powers a unit or nearly (r^d - 1 has at most
    2 + v2(d) factors of two), so two different sums collide only by chance in the tokens' hashes.
    """

    def __init__(self, r: int) -> None:
        self._r = r
        self._ints: list[int] = []
        self._array = np.empty(0, dtype=np.uint64)

    def ints(self, n: int) -> list[int]:
        """The first n powers."""
        while len(self._ints) < n:
            last = self._ints[-1] if self._ints else 1
            self._ints.append(last * self._r & siphash.MASK)
        return self._ints[:n] if len(self._ints) > n else self._ints

    def array(self, n: int) -> siphash.Words:
        """At least the first n powers, as uint64."""
        if len(self._array) < n:
            self._array = np.array(self.ints(max(n, 2 * len(self._array))), dtype=np.uint64)
        return self._array
