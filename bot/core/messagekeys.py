"""The key a learned message is stored under: a 64-bit number for its platform and id, not the id's text.

Discord's ids are already such numbers (snowflakes), unique and growing with time: they are their
own key, so a live bot's rows go in at the end of the table (a hash scattered them over every
page: twice the bytes written per commit). Every other id is hashed.

The messages table (migration 0011) keeps one row per learned message, keyed by this number
instead of the id's text: 8 bytes instead of about 25, and an integer primary key that its index
entries point to in 8 bytes more (a text key is repeated in every index entry). The hash is
unkeyed and fixed (the same on every machine and hash seed), so an old database's rows convert
in place and keep deduping the ids they learned. It is of the id, never of the text: it says
nothing about what a message said. Two ids with the same key (about 3e-8 at 1,000,000 messages)
would make the second one count as learned already: that message is skipped, nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

PERSON = b"markovbot-msgkey"  # blake2b's personalisation: this hash is no other hash of the same bytes
OWN_KEYS = "discord"  # the platform whose message ids are their own key


def message_key(platform: str, message_id: str) -> int:
    """The signed 64-bit key of a message id (an SQLite integer)."""
    if platform == OWN_KEYS and message_id.isascii() and message_id.isdigit():
        number = int(message_id)
        if number < 2**63 and str(number) == message_id:  # no leading zero: one key, one id
            return number
    data = f"{platform}\x1f{message_id}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(data, digest_size=8, person=PERSON).digest()
    return int.from_bytes(digest, "big", signed=True)


def message_keys(platform: str, message_ids: Sequence[str]) -> npt.NDArray[np.int64]:
    """message_key() of each id on one platform (the platform's part hashed once: an import's batch)."""
    if platform == OWN_KEYS:
        return np.array([message_key(platform, message_id) for message_id in message_ids], dtype=np.int64)
    prefix = f"{platform}\x1f".encode("utf-8", "surrogatepass")
    copy = hashlib.blake2b(prefix, digest_size=8, person=PERSON).copy
    digests = []
    for message_id in message_ids:
        h = copy()
        h.update(message_id.encode("utf-8", "surrogatepass"))
        digests.append(h.digest())
    return np.frombuffer(b"".join(digests), dtype=">i8").astype(np.int64)
