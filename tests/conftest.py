"""Shared fixtures: a real Brain over a real SQLite file in tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core import countwriter
from bot.core.brain import Brain


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
