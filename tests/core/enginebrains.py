"""The Brain's contract tests on either engine: places to open a Brain, and what a test reads back from each.

A place is a SQLite file (a Path) or a PostgreSQL database's URL (a str); the readers below take
either and answer in the same form, so a test asserts the same things on both engines.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from bot.core import chain as chainmod
from bot.core.sealed import Sealer
from tests.core.dump import logical_dump
from tests.core.pg_dump import pg_logical_dump

Where = Path | str
RUN = f"markov_prop_{os.getpid()}_{secrets.token_hex(3)}"
NUMBERS = itertools.count(1)


class Databases:
    """A test's PostgreSQL databases, made once and emptied for each hypothesis example (quicker than new ones)."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.names: list[str] = []

    def url(self, name: str) -> str:
        """The URL of one of them."""
        return urlsplit(self.server)._replace(path=f"/{name}").geturl()

    async def empty(self, n: int) -> list[str]:
        """The URLs of n databases with nothing in them: their schema dropped, as new."""
        admin = await asyncpg.connect(self.server)
        try:
            while len(self.names) < n:
                self.names.append(f"{RUN}_{next(NUMBERS)}")
                await admin.execute(f'CREATE DATABASE "{self.names[-1]}"')
        finally:
            await admin.close()
        for name in self.names[:n]:
            conn = await asyncpg.connect(self.url(name))
            try:
                await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            finally:
                await conn.close()
        return [self.url(name) for name in self.names[:n]]

    async def drop(self) -> None:
        """Drop them all."""
        admin = await asyncpg.connect(self.server)
        try:
            for name in self.names:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def places(tmp: Path, databases: Databases | None, n: int) -> AsyncIterator[list[Where]]:
    """n empty places: SQLite files in tmp, or (databases given) emptied PostgreSQL databases."""
    if databases is None:
        yield [tmp / f"{i}.db" for i in range(n)]
    else:
        yield list(await databases.empty(n))


def key_path(where: Where, tmp: Path) -> dict[str, Any]:
    """The key_path option a Brain over where needs: PostgreSQL's key file, in tmp (never read: a key is given)."""
    return {} if isinstance(where, Path) else {"key_path": tmp / "pg"}


async def dump_of(where: Where, key: bytes) -> dict[str, Any]:
    """The logical dump (tests.core.dump's form) of either engine's database."""
    if isinstance(where, Path):
        return logical_dump(where, key)
    return await pg_logical_dump(where, key)


async def rows_of(where: Where, sql: str) -> list[tuple[Any, ...]]:
    """The rows of a plain SELECT (no parameters) on either engine."""
    if isinstance(where, Path):
        with contextlib.closing(sqlite3.connect(where)) as db:
            return [tuple(r) for r in db.execute(sql)]
    conn = await asyncpg.connect(where)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def recent_keys(where: Where) -> list[int]:
    """The message keys of the recent rows, sorted."""
    return sorted(int(k) for (k,) in await rows_of(where, "SELECT id FROM recent_messages"))


async def token_texts(where: Where) -> set[str]:
    """The vocabulary's words."""
    return {str(t) for (t,) in await rows_of(where, "SELECT text FROM tokens")}


async def orphan_recent_tokens(where: Where, key: bytes) -> list[int]:
    """Token ids of recent rows that are not in the vocabulary with refs > 0, or rows without a message."""
    refs = {int(i): int(r) for i, r in await rows_of(where, "SELECT id, refs FROM tokens")}
    learned = {int(k) for (k,) in await rows_of(where, "SELECT id FROM messages")}
    sealer = Sealer(key)
    bad = []
    for mid, sealed in await rows_of(where, "SELECT id, token_ids FROM recent_messages"):
        packed = sealer.open(int(mid), bytes(sealed))
        if int(mid) not in learned or packed is None:
            bad.append(-1)
            continue
        bad += [i for i in chainmod.unpack(packed) if refs.get(i, 0) <= 0]
    return bad


async def set_recent(where: Where, key: int, sealed: bytes) -> None:
    """Overwrite a recent row's sealed token ids by hand (as someone with the database alone could)."""
    if isinstance(where, Path):
        with contextlib.closing(sqlite3.connect(where)) as db, db:
            db.execute("UPDATE recent_messages SET token_ids = ? WHERE id = ?", (sealed, key))
        return
    conn = await asyncpg.connect(where)
    try:
        await conn.execute("UPDATE recent_messages SET token_ids = $1 WHERE id = $2", sealed, key)
    finally:
        await conn.close()
