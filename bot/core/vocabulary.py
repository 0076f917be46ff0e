"""The vocabulary: token ids and texts, with the writer's and the reader's caches of them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from bot.core.connections import Connections, take_ids
from bot.core.contracts import VocabularyStore
from bot.core.lru import LRU
from bot.core.sql import Q


class Vocabulary:
    """Assigns token ids (on the writer), reads texts back (on the reader), and caches both ways."""

    def __init__(self, db: Connections, cache_size: int) -> None:
        self._db = db
        self._token_ids: LRU[str, int] = LRU(cache_size)  # the writer's, revalidated per transaction
        self._token_texts: LRU[int, str] = LRU(cache_size)  # ids are never reused: true forever

    def clear(self) -> None:
        """Forget the writer's ids (read again on use); texts stay true."""
        self._token_ids.clear()

    async def resolve(self, texts: Iterable[str], create: bool) -> dict[str, int]:
        """Token ids for texts (on the writer), creating the missing ones when asked.

        New ids follow the order in which texts first occur (not a set's, which varies with
        PYTHONHASHSEED), taken from the database's counter inside the open transaction.
        """
        # The cache's work runs in a thread (a batch's tokens, 100,000 and more, took the event loop
        # tens of milliseconds): the cache is the writer's alone, and the writer holds the write lock.
        ids, missing = await asyncio.to_thread(self._cached, texts)
        if missing:
            async with self._db.w.execute(Q["tokens_by_text"], (json.dumps(missing),)) as cur:
                for token_id, text in await cur.fetchall():
                    ids[text] = int(token_id)
            unknown = [text for text in missing if text not in ids]
            if create and unknown:
                first = await take_ids(self._db.w, "next_token_id", len(unknown))
                new = [(first + i, text) for i, text in enumerate(unknown)]
                await self._db.w.executemany(Q["insert_token"], new)
                ids.update((text, token_id) for token_id, text in new)
            await asyncio.to_thread(self._remember, missing, ids)
        return ids

    def _cached(self, texts: Iterable[str]) -> tuple[dict[str, int], list[str]]:
        """The cached ids of texts, and the texts not cached, in the order they first occur."""
        ids: dict[str, int] = {}
        missing: list[str] = []
        for text in dict.fromkeys(texts):
            cached = self._token_ids.get(text)
            if cached is None:
                missing.append(text)
            else:
                ids[text] = cached
        return ids, missing

    def _remember(self, texts: Sequence[str], ids: dict[str, int]) -> None:
        """Cache the ids found of texts."""
        for text in texts:
            if text in ids:
                self._token_ids.put(text, ids[text])

    async def add_refs(self, refs: dict[int, int]) -> None:
        """Add to tokens' reference counts (inside the open transaction), deleting tokens no longer used."""
        await self._db.w.executemany(
            Q["add_token_refs"], ((n, token_id) for token_id, n in refs.items() if n)
        )
        if any(n < 0 for n in refs.values()):
            dropped = [token_id for token_id, n in refs.items() if n < 0]
            async with self._db.w.execute(Q["delete_unused_tokens"], (json.dumps(dropped),)) as cur:
                for token_id, text in await cur.fetchall():
                    self._token_ids.pop(text)
                    self._token_texts.pop(int(token_id))

    async def token_id(self, text: str) -> int | None:
        """The id of a token, or None when it was never learned (read now: another process may drop it)."""
        rows = await self._db.r.execute_fetchall(Q["token_id"], (text,))
        return int(next(iter(rows))[0]) if rows else None

    async def texts(self, ids: Sequence[int]) -> list[str]:
        """Token texts for ids."""
        missing = [i for i in set(ids) if self._token_texts.get(i) is None]
        found: dict[int, str] = {}
        if missing:
            for token_id, text in await self._db.r.execute_fetchall(
                Q["tokens_by_id"], (json.dumps(missing),)
            ):
                found[int(token_id)] = text
                self._token_texts.put(int(token_id), text)
        return [found.get(i) or self._token_texts.get(i) or "" for i in ids]


if TYPE_CHECKING:
    _conforms: type[VocabularyStore] = Vocabulary  # mypy checks this part against its contract
