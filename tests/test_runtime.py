"""Process-wide tuning: the garbage collector runs seldom while an import runs, and as before after."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path

import pytest

from bot import runtime
from bot.core.batchlearn import BatchLearner, Offered
from bot.core.brain import Brain
from bot.core.models import ChainKey
from bot.importer import import_file


def test_imports_collect_seldom_and_the_thresholds_return_once_the_last_one_ends() -> None:
    before = gc.get_threshold()
    with runtime.fewer_collections():
        assert gc.get_threshold() == (runtime.IMPORT_GC_THRESHOLD, *before[1:])
        with runtime.fewer_collections():  # a second import meanwhile
            pass
        assert gc.get_threshold()[0] == runtime.IMPORT_GC_THRESHOLD
    assert gc.get_threshold() == before


def test_the_thresholds_return_when_an_import_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(OSError), runtime.fewer_collections():
        raise OSError("No space left on device")
    assert gc.get_threshold() == before


async def test_a_file_is_learned_with_fewer_collections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "c.txt"
    source.write_text("hello there\nhow are you\n", encoding="utf-8")
    before = gc.get_threshold()
    seen: list[int] = []
    add = BatchLearner.add

    async def watched(self: BatchLearner, batch: Sequence[Offered]) -> None:
        seen.append(gc.get_threshold()[0])
        await add(self, batch)

    monkeypatch.setattr(BatchLearner, "add", watched)
    brain = await Brain.open(tmp_path / "m.db", key=bytes(16), walker="thread")
    try:
        result = await import_file(brain, source, ChainKey("local", "local", "c"), progress=False)
    finally:
        await brain.close()
    assert result.learned == 2
    assert seen and set(seen) == {runtime.IMPORT_GC_THRESHOLD}
    assert gc.get_threshold() == before
