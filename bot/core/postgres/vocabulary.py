"""The vocabulary in PostgreSQL: token ids assigned by the database, shared by every writing process.

A token's id comes from the tokens table's identity sequence when a process first inserts its
text; a process inserting the same text at once waits for the first one's transaction (the UNIQUE
key), then reads its id. So every process gets the same id for the same text, with no counter of
its own. Reference counts change by atomic ``refs = refs + n`` updates, on rows locked in id order.

Caches: an id read from a committed row is cached at once (ids never change); an id this
process's open transaction made is held apart and cached only when that transaction commits
(bot.core.postgres.transactions). Another process may delete a token that fell to 0 refs while
this one still caches it: ``add_refs`` then finds its row gone, drops the cache and raises
VocabularyChanged, and the caller's transaction rolls back (nothing refers to the vanished id).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from bot.core.contracts import VocabularyStore
from bot.core.lru import LRU
from bot.core.postgres.connections import PgDatabase
from bot.core.postgres.schema import PQ
from bot.core.postgres.transactions import PgWrites
from bot.core.schema import StoreError

INSERT_ATTEMPTS = 5  # a text made and deleted again by others between our insert and our read, this often


class VocabularyChanged(StoreError):
    """Another process deleted tokens this transaction used: roll it back and run it again."""


class BadToken(ValueError):
    """A token PostgreSQL cannot store (a NUL character; the tokenizer never makes one)."""


class Vocabulary:
    """Assigns token ids (in the open write transaction), reads texts back (on the pool), caches both ways."""

    def __init__(self, db: PgDatabase, writes: PgWrites, cache_size: int) -> None:
        self._db = db
        self._writes = writes
        self._token_ids: LRU[str, int] = LRU(cache_size)  # committed rows only
        self._token_texts: LRU[int, str] = LRU(cache_size)
        self._made: dict[str, int] = {}  # made by the open transaction: cached if it commits
        writes.on_end(self._ended)

    def clear(self) -> None:
        """Forget the cached ids (read again on use); what the open transaction made stays its own."""
        self._token_ids.clear()

    def _ended(self, committed: bool) -> None:
        """The write transaction ended: what it made is cached if it committed, forgotten if not."""
        if committed:
            for text, token_id in self._made.items():
                self._token_ids.put(text, token_id)
                self._token_texts.put(token_id, text)
        self._made.clear()

    def _known(self, text: str) -> int | None:
        return self._token_ids.get(text) or self._made.get(text)

    async def resolve(self, texts: Iterable[str], create: bool) -> dict[str, int]:
        """Token ids for texts (in the open write transaction), creating the missing ones when asked."""
        ids: dict[str, int] = {}
        missing: list[str] = []
        for text in dict.fromkeys(texts):
            known = self._known(text)
            if known is None:
                missing.append(text)
            else:
                ids[text] = known
        if not missing:
            return ids
        if any("\x00" in text for text in missing):
            raise BadToken("a token with a NUL character cannot be stored in PostgreSQL")
        conn = self._writes.w
        committed = await self._read(missing)
        unknown = [text for text in missing if text not in committed]
        attempts = 0
        while create and unknown:
            if attempts == INSERT_ATTEMPTS:
                raise StoreError(
                    f"{len(unknown)} tokens were made and deleted by other processes {attempts} times "
                    "while this one resolved them; try again"
                )
            attempts += 1
            rows = await conn.fetch(PQ["insert_tokens"], sorted(unknown))
            made = {str(text): int(token_id) for token_id, text in rows}
            self._made.update(made)
            ids.update(made)
            # The rest were made by another transaction, committed by now (the insert waited for it).
            rest = [text for text in unknown if text not in made]
            committed.update(await self._read(rest) if rest else {})
            unknown = [text for text in rest if text not in committed]
        for text, token_id in committed.items():
            self._token_ids.put(text, token_id)
        ids.update(committed)
        return ids

    async def _read(self, texts: list[str]) -> dict[str, int]:
        """Ids of texts in the database, as the open transaction sees it (READ COMMITTED: committed rows)."""
        rows = await self._writes.w.fetch(PQ["tokens_by_text"], texts)
        return {str(text): int(token_id) for token_id, text in rows}

    async def add_refs(self, refs: dict[int, int]) -> None:
        """Add to tokens' reference counts (in the open write transaction), deleting tokens no longer used."""
        changes = sorted((token_id, n) for token_id, n in refs.items() if n)
        if not changes:
            return
        conn = self._writes.w
        wanted = [token_id for token_id, _ in changes]
        present = {int(row[0]) for row in await conn.fetch(PQ["lock_tokens"], wanted)}
        if len(present) < len(wanted):
            self._token_ids.clear()  # some cached id names a deleted token: read them all again
            raise VocabularyChanged(
                f"{len(wanted) - len(present)} tokens were deleted by another process meanwhile; "
                "roll back and try again"
            )
        await conn.execute(PQ["add_token_refs"], wanted, [n for _, n in changes])
        dropped = [token_id for token_id, n in changes if n < 0]
        if dropped:
            for token_id, text in await conn.fetch(PQ["delete_unused_tokens"], dropped):
                self._token_ids.pop(str(text))
                self._made.pop(str(text), None)
                self._token_texts.pop(int(token_id))

    async def token_id(self, text: str) -> int | None:
        """The id of a token, or None when it was never learned (read now: another process may drop it)."""
        if "\x00" in text:
            return None  # never stored
        found = await self._db.pool.fetchval(PQ["token_id"], text)
        return None if found is None else int(found)

    async def texts(self, ids: Sequence[int]) -> list[str]:
        """Token texts for ids."""
        missing = [i for i in set(ids) if self._token_texts.get(i) is None]
        found: dict[int, str] = {}
        if missing:
            for token_id, text in await self._db.pool.fetch(PQ["tokens_by_id"], missing):
                found[int(token_id)] = str(text)
                self._token_texts.put(int(token_id), str(text))
        return [found.get(i) or self._token_texts.get(i) or "" for i in ids]


if TYPE_CHECKING:
    _conforms: type[VocabularyStore] = Vocabulary  # mypy checks this part against its contract
