"""Fixtures of the core tests: the engines the contract tests and the block properties run on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.core.blockengines import ENGINES, BlockEngine


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
