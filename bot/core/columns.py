"""A batch of prepared messages as columns: what the writer learns, unlearns and counts.

An import's worker makes a batch's columns at once (a vocabulary of its distinct tokens and each
message's tokens as indexes into it), and the writer counts and inserts from the arrays with no
Python object a message or a token; live batches are made columns as they reach the writer.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bot.core.models import PendingMessage

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


def ints(values: Iterable[int], count: int = -1) -> Ints:
    """Python ints as an int64 array."""
    return np.fromiter(values, dtype=np.int64, count=count)


def indexed(tokens: list[str]) -> tuple[list[str], Ints]:
    """Tokens as a vocabulary (the distinct ones, in the order they first occur) and each one's index in it."""
    vocab = list(dict.fromkeys(tokens))
    index = {token: i for i, token in enumerate(vocab)}
    return vocab, ints(map(index.__getitem__, tokens), len(tokens))


@dataclass(frozen=True)
class Columns:
    """Messages prepared for the writer, one array a field (the i-th entry of each is the i-th message's)."""

    keys: Ints  # what its rows are keyed by (bot.core.messagekeys)
    chains: Ints  # its chain's id ...
    orders: Ints  # ... and order
    authors: Ints  # its author's id
    fingerprints: Ints  # of the exact tokens
    normals: Ints  # of the normalised tokens, where formed (fingerprint schemes 2 and 3)
    formed: Bools
    chars: Ints
    sizes: Ints  # its text's UTF-8 bytes
    keep: Bools  # kept, sealed, for the edit window
    lengths: Ints  # its tokens
    window_counts: Ints  # its K-run fingerprints
    windows: Ints  # every message's K-run fingerprints, one message after another
    vocab: list[str]  # the batch's distinct tokens, in the order they first occur
    tokens: Ints  # every message's tokens as indexes into vocab, one message after another

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def of(cls, batch: Sequence[PendingMessage]) -> Columns:
        """A batch of prepared messages as columns."""
        vocab, tokens = indexed(list(itertools.chain.from_iterable([i.tokens for i in batch])))
        n = len(batch)
        return cls(
            keys=ints([i.key for i in batch], n),
            chains=ints([i.chain.id for i in batch], n),
            orders=ints([i.chain.order for i in batch], n),
            authors=ints([i.author_id for i in batch], n),
            fingerprints=ints([i.fingerprint for i in batch], n),
            normals=ints([i.normal or 0 for i in batch], n),
            formed=np.array([i.normal is not None for i in batch], dtype=np.bool_),
            chars=ints([i.chars for i in batch], n),
            sizes=ints([i.bytes for i in batch], n),
            keep=np.array([i.keep for i in batch], dtype=np.bool_),
            lengths=ints([len(i.tokens) for i in batch], n),
            window_counts=ints([len(i.windows) for i in batch], n),
            windows=ints(itertools.chain.from_iterable([i.windows for i in batch])),
            vocab=vocab,
            tokens=tokens,
        )

    def select(self, which: Bools | slice) -> Columns:
        """The messages picked (a mask, or a range), with a vocabulary of only their tokens, in the
        order they first occur."""
        mask = np.zeros(len(self), dtype=np.bool_)
        mask[which] = True
        if mask.all():
            return self
        tokens = self.tokens[np.repeat(mask, self.lengths)]
        used, first = np.unique(tokens, return_index=True)
        in_order = used[np.argsort(first, kind="stable")]
        renumber = np.zeros(len(self.vocab), dtype=np.int64)
        renumber[in_order] = np.arange(len(in_order))
        return Columns(
            **{name: getattr(self, name)[mask] for name in PER_MESSAGE},
            windows=self.windows[np.repeat(mask, self.window_counts)],
            vocab=[self.vocab[i] for i in in_order.tolist()],
            tokens=renumber[tokens],
        )

    @staticmethod
    def concat(parts: Sequence[Columns]) -> Columns:
        """Batches one after another, as one (their vocabularies merged, still in first-occurrence order)."""
        if len(parts) == 1:
            return parts[0]
        vocab, renumber = indexed([token for part in parts for token in part.vocab])
        tokens, at = [], 0
        for part in parts:
            tokens.append(renumber[at : at + len(part.vocab)][part.tokens])
            at += len(part.vocab)
        return Columns(
            **{
                name: np.concatenate([getattr(part, name) for part in parts])
                for name in ARRAYS
                if name != "tokens"
            },
            vocab=vocab,
            tokens=np.concatenate(tokens) if tokens else np.empty(0, dtype=np.int64),
        )

    def token_tuples(self) -> list[tuple[str, ...]]:
        """Each message's tokens."""
        texts = [self.vocab[i] for i in self.tokens.tolist()]
        ends = np.cumsum(self.lengths)
        return [
            tuple(texts[lo:hi]) for lo, hi in zip((ends - self.lengths).tolist(), ends.tolist(), strict=True)
        ]


#: The fields that are arrays (every one but vocab) ...
ARRAYS = tuple(name for name in Columns.__dataclass_fields__ if name != "vocab")
#: ... and those of them with one entry a message.
PER_MESSAGE = tuple(name for name in ARRAYS if name not in ("windows", "tokens"))
