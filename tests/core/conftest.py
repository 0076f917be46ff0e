"""Fixtures of the core tests: the engines the contract tests and the block properties run on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.brain import Brain
from tests.core.blockengines import ENGINES, BlockEngine
from tests.core.enginebrains import Databases


@pytest.fixture(params=ENGINES)
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Each engine in turn: a SQLite file, or a fresh PostgreSQL database (asked for only when it runs)."""
    if request.param == "sqlite":
        return tmp_path / "markov.sqlite3"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(params=ENGINES)
def block_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> BlockEngine:
    """Each engine in turn: SQLite files, or a fresh PostgreSQL database (asked for only when it runs)."""
    if request.param == "sqlite":
        return BlockEngine("sqlite", tmp_path_factory)
    url: str = request.getfixturevalue("pg_url")
    return BlockEngine("postgresql", tmp_path_factory, url)


@pytest.fixture
async def engine_brain(where: Path | str, tmp_path: Path) -> AsyncIterator[Brain]:
    """A Brain over where (each engine in turn), closed (and flushed) after the test."""
    options: dict[str, Any] = {} if isinstance(where, Path) else {"key_path": tmp_path / "pg"}
    opened = await Brain.open(where, flush_interval=0.05, **options)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(params=ENGINES)
def databases(request: pytest.FixtureRequest) -> Iterator[Databases | None]:
    """Each engine in turn, for tests that open several databases: None (SQLite files), or PostgreSQL's."""
    if request.param == "sqlite":
        yield None
        return
    databases = Databases(request.getfixturevalue("pg_server"))
    try:
        yield databases
    finally:
        asyncio.run(databases.drop())
