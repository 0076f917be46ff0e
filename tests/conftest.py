"""Shared fixtures: a real Brain over a real SQLite file in tmp_path; a real PostgreSQL database per test."""

from __future__ import annotations

import itertools
import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from bot.core import countwriter
from bot.core.brain import Brain
from tests import pgserver

PG_RUN = f"markov_test_{os.getpid()}_{secrets.token_hex(3)}"  # this run's databases' names start so
PG_DATABASES = itertools.count(1)


@pytest.fixture(autouse=True)
def merge_every_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stores opened by a test merge their delta rows into blocks at every commit, so that every
    read and every write of a test meets the blocks (bot.core.blocks); the shipped threshold
    (MERGE_ROWS) keeps small chains in the delta. Tests of the delta pass merge_rows themselves."""
    monkeypatch.setattr(countwriter, "MERGE_ROWS", 0)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where this test's database lives."""
    return tmp_path / "markov.sqlite3"


@pytest.fixture
async def brain(db_path: Path) -> AsyncIterator[Brain]:
    """A Brain over a fresh database file, closed (and flushed) after the test."""
    opened = await Brain.open(db_path, flush_interval=0.05)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server's superuser URL: MARKOV_TEST_DATABASE_URL, or a throwaway server started here."""
    given = os.environ.get(pgserver.URL_ENV, "").strip()
    if given:
        yield given
        return
    bindir = pgserver.find_bindir()
    if bindir is None:
        why = f"no PostgreSQL: set {pgserver.URL_ENV} or install PostgreSQL's server binaries"
        if os.environ.get("CI"):
            pytest.fail(why)  # CI never skips the PostgreSQL tests
        pytest.skip(why)
    server = pgserver.ThrowawayServer(bindir)
    try:
        server.start()
    except subprocess.CalledProcessError as exc:
        server.stop()
        pytest.fail(
            f"cannot start a throwaway PostgreSQL from {bindir}: {exc.stderr.decode(errors='replace')}"
        )
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
async def pg_url(pg_server: str) -> AsyncIterator[str]:
    """The URL of a fresh, empty database of this run's own on the test server, dropped after the test."""
    name = f"{PG_RUN}_{next(PG_DATABASES)}"
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield urlsplit(pg_server)._replace(path=f"/{name}").geturl()
    finally:
        admin = await asyncpg.connect(pg_server)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
