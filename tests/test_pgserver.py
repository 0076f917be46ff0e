"""The tests' throwaway PostgreSQL (used when MARKOV_TEST_DATABASE_URL is unset) starts, also as root."""

from __future__ import annotations

import os

import asyncpg
import pytest

from tests import pgserver


async def test_a_throwaway_server_starts_accepts_connections_and_is_removed() -> None:
    bindir = pgserver.find_bindir()
    if bindir is None:  # a developer's machine without PostgreSQL may skip; CI may not
        (pytest.fail if os.environ.get("CI") else pytest.skip)("no PostgreSQL server binaries installed")
    server = pgserver.ThrowawayServer(bindir)
    server.start()
    try:
        conn = await asyncpg.connect(server.url)
        try:
            assert await conn.fetchval("SELECT current_user") == "postgres"
            await conn.execute("CREATE DATABASE markov_probe")  # what each test's database needs
        finally:
            await conn.close()
    finally:
        server.stop()
    assert not server.root.exists()
