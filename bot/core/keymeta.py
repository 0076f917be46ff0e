"""The fingerprint key's trace in the database: its check value, and moving an old salt out of meta."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiosqlite

from bot.core import keys
from bot.core.connections import scrubbing
from bot.core.schema import StoreError
from bot.core.sql import Q
from bot.core.writetx import ReaderSql

log = logging.getLogger(__name__)


async def load_key(conn: aiosqlite.Connection, path: Path, given: bytes | None) -> bytes:
    """The fingerprint key, checked against the database's check value (see bot.core.keys).

    A database from before the key file keeps its key as a salt in meta: it is written to the
    key file (durably) first, then removed from meta in one transaction, so a crash between
    the two leaves both, and the next open completes the move.
    """
    salt, check = await _meta(conn, keys.OLD_SALT_META), await _meta(conn, keys.CHECK_META)
    try:
        key = await asyncio.to_thread(keys.resolve, path, given, salt=salt, check=check)
    except keys.KeyRefused as exc:
        raise StoreError(str(exc)) from None
    if salt is not None or check is None:
        await _store_check(conn, key, drop_salt=salt is not None)
    return key


async def _meta(conn: aiosqlite.Connection, name: str) -> str | None:
    async with conn.execute(Q["get_meta"], (name,)) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row else None


async def _store_check(conn: aiosqlite.Connection, key: bytes, *, drop_salt: bool) -> None:
    """Record the key's check value and drop an old salt, zeroing its bytes in the file."""
    async with scrubbing(conn):  # the old page (with the salt) would stay in the log and the file
        await conn.execute("BEGIN IMMEDIATE")
        try:
            await conn.execute(Q["set_meta"], (keys.CHECK_META, keys.check_value(key)))
            if drop_salt:
                await conn.execute(Q["delete_meta"], (keys.OLD_SALT_META,))
            await conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            raise


async def load_shared_key(sql: ReaderSql, key_path: Path, given: bytes | None, named: str) -> bytes:
    """The fingerprint key of a database other processes share (PostgreSQL), checked against its check value.

    key_path: where its key file is named from (``<key_path>.key``, as beside a SQLite file); named: the
    database as messages call it (its URL without a password). There is no
    old salt to move. The check value is set once: two processes opening a new database at once with
    other keys, the second's is refused.
    """
    check = await _shared_meta(sql, keys.CHECK_META)
    if given is None and check is None:  # the key file is made now, in a folder that may not exist yet
        await asyncio.to_thread(key_path.parent.mkdir, parents=True, exist_ok=True)
    try:
        key = await asyncio.to_thread(keys.resolve, key_path, given, salt=None, check=check, named=named)
        if check is None:
            await sql.execute(sql.statements["add_meta"], (keys.CHECK_META, keys.check_value(key)))
            stored = await _shared_meta(sql, keys.CHECK_META)
            await asyncio.to_thread(keys.resolve, key_path, key, salt=None, check=stored, named=named)
    except keys.KeyRefused as exc:
        raise StoreError(str(exc)) from None
    return key


async def _shared_meta(sql: ReaderSql, name: str) -> str | None:
    row = await sql.fetchone(sql.statements["get_meta"], (name,))
    return str(row[0]) if row else None
