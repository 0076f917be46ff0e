"""The retention report's reads (bot.core.reports) give the same figures on SQLite and PostgreSQL, the corpus's."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from bot.core import chain as chainmod
from bot.core import retention
from bot.core.brain import Brain
from bot.core.connections import Connections
from bot.core.fingerprints import Fingerprinter
from bot.core.models import ChainKey, Message
from bot.core.reports import Branch, LearnedMessages, Multiplicity, Reports
from bot.core.tokens import tokenize
from tests.core import readengines
from tests.core.enginebrains import Where, rows_of
from tests.core.readengines import ORDER, Corpus, corpus


async def figures(reports: Reports, chain_id: int, data: Corpus) -> dict[str, Any]:
    """Every figure the report reads of a chain (table bytes aside: each engine stores its own way)."""
    contexts = sorted({k[:ORDER] for k in data.counts})
    fps = [fp for _, _, fp, _, _ in data.message_rows]
    normals = sorted({normal for _, _, _, normal, _ in data.message_rows})
    windows = sorted({fp for fp, _ in data.windows})
    return {
        "table_rows": await reports.table_rows(),
        "window_rows": await reports.window_rows(chain_id),
        "recent_rows": await reports.recent_rows(chain_id),
        "delta_rows": await reports.delta_rows(chain_id),
        "block_bytes": await reports.block_bytes(chain_id),
        "windows_present": [await reports.windows_present(chain_id, [fp]) for fp in windows[:40]],
        "windows_absent": await reports.windows_present(chain_id, [1, 2, 3]),
        "top": [await reports.top_successors(chain_id, chainmod.pack(c), 3) for c in contexts],
        "messages": sorted(await reports.message_multiplicity(chain_id, [*fps, 7], normalised=False)),
        "forms": await reports.message_multiplicity(chain_id, [*normals, 7], normalised=True),
        "exact": await reports.learned_fingerprints(chain_id, [*fps, 7, *normals]),
        "scan": await reports.scan(chain_id, ORDER),
        "learned": [
            await reports.learned_messages(chain_id, normalised=normalised, times=2, authors=2, order=ORDER)
            for normalised in (False, True)
        ],
    }


def expected(data: Corpus) -> dict[str, Any]:
    """What the corpus itself says of the figures that do not depend on how blocks are cut."""
    counts = data.counts
    top = []
    for ctx in sorted({k[:ORDER] for k in counts}):
        by_next: Counter[int] = Counter()
        for k, v in counts.items():
            if k[:ORDER] == ctx:
                by_next[k[ORDER]] += v
        total = sum(by_next.values())
        ranked = sorted(by_next.items(), key=lambda item: (-item[1], -item[0]))[:3]
        top.append([Branch(token, k, total) for token, k in ranked])
    return {
        "window_rows": len(data.window_blocks) + len(data.window_delta),
        "delta_rows": len(data.delta),
        "windows_absent": False,
        "top": top,
        "states": len({k[:ORDER] for k in counts}),
        "pairs": len({k[: ORDER + 1] for k in counts}),
        "total": sum(counts.values()),
    }


async def test_the_reports_read_the_same_figures_on_both_engines(tmp_path: Path, pg_url: str) -> None:
    data = corpus(7)
    path = tmp_path / "reports.sqlite3"
    sqlite_chain = await readengines.write(path, data)
    pg_chain = await readengines.write(pg_url, data)
    reader = await aiosqlite.connect(path)
    sqlite_reports = Reports(Connections(reader=reader), path)
    pg_reports = Reports(Connections(), pg_url)  # as the Store makes it: SQLite's connections, unused
    try:
        on_sqlite = await figures(sqlite_reports, sqlite_chain.id, data)
        on_pg = await figures(pg_reports, pg_chain.id, data)
        sqlite_bytes, pg_bytes = await sqlite_reports.table_bytes(), await pg_reports.table_bytes()
    finally:
        await sqlite_reports.close()
        await pg_reports.close()
        await reader.close()
    assert on_pg == on_sqlite
    want = expected(data)
    for name in ("window_rows", "delta_rows", "windows_absent", "top"):
        assert on_sqlite[name] == want[name], name
    assert all(on_sqlite["windows_present"])
    shape = on_sqlite["scan"].shape
    assert (shape.states, shape.pairs, shape.total) == (want["states"], want["pairs"], want["total"])
    assert on_sqlite["scan"].vocabulary == len(data.token_ids)
    assert on_sqlite["learned"][0].distinct == len({fp for _, _, fp, _, _ in data.message_rows})
    assert on_sqlite["forms"] == forms(data.message_rows)
    assert on_sqlite["exact"] == {
        fp for _, _, fp, _, _ in data.message_rows
    }  # exact messages; a form only when a message was said so
    assert on_sqlite["block_bytes"].chain > 0
    for found in (sqlite_bytes, pg_bytes):
        assert found["transition_blocks"] > 0 and found["messages"] > 0


def forms(rows: list[tuple[int, int, int, int, int]]) -> list[Multiplicity]:
    """Each normalised form's (times, authors), counted from the message rows (id, author, fp, normal, tokens)."""
    said: defaultdict[int, list[int]] = defaultdict(list)
    for _, author, _, normal, _ in rows:
        said[normal].append(author)
    return [Multiplicity(normal, len(authors), len(set(authors))) for normal, authors in sorted(said.items())]


async def test_a_postgresql_report_needs_no_sqlite_reader_but_a_sqlite_one_does(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Reports(None, tmp_path / "x.sqlite3")


def counted(
    rows: list[tuple[int, int, int, int, int]], normalised: bool, times: int, authors: int
) -> LearnedMessages:
    """The learned-message figures counted from the message rows (id, author, fp, normal, tokens) in Python."""
    groups: defaultdict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for _, author, fp, normal, tokens in rows:
        groups[normal if normalised else fp].append((author, fp, tokens))
    figures = [0] * 6
    for said in groups.values():
        once = len(said) == 1
        common = len(said) >= times or len({a for a, _, _ in said}) >= authors
        if normalised:  # every variant (exact message) of the form, counted
            variants = len({fp for _, fp, _ in said})
            longer = len({fp for _, fp, n in said if n > ORDER})
        else:
            variants, longer = 1, int(max(n for _, _, n in said) > ORDER)
        these = (variants, variants * once, variants * common, longer, longer * once, longer * common)
        figures = [a + b for a, b in zip(figures, these, strict=True)]
    return LearnedMessages(*figures)


async def test_the_learned_message_figures_are_what_the_rows_say(tmp_path: Path, pg_url: str) -> None:
    rng = random.Random(5)
    path = tmp_path / "learned.sqlite3"
    for example in range(30):
        data = corpus(7)
        said = [(rng.randint(0, 11), rng.randint(1, 3)) for _ in range(rng.randint(1, 30))]
        # An exact message's normal form and length follow from it, as they do from its tokens.
        data.message_rows = [
            (1000 + i, author, fp, fp // 3, fp % 4 + 1) for i, (fp, author) in enumerate(said)
        ]
        times, authors = rng.randint(1, 3), rng.randint(1, 3)
        for where in (path, pg_url):
            chain = await readengines.write(where, data, channel=f"c{example}")
            if isinstance(where, Path):
                reader = await aiosqlite.connect(where)
                reports = Reports(Connections(reader=reader), where)
            else:
                reader, reports = None, Reports(Connections(), where)
            try:
                for normalised in (False, True):
                    found = await reports.learned_messages(
                        chain.id, normalised=normalised, times=times, authors=authors, order=ORDER
                    )
                    want = counted(data.message_rows, normalised, times, authors)
                    assert found == want, (where, normalised)
            finally:
                await reports.close()
                if reader is not None:
                    await reader.close()


async def test_a_report_after_a_forget_reads_none_of_the_members_counts(
    engine_brain: Brain, where: Where
) -> None:
    """A forget rewrites blocks in place (ids kept): the report's decoded blocks, and the K-runs it
    found, held from before it must not answer after it (refresh, once before the attack's reads)."""
    brain = engine_brain
    await brain.set_channel("p", "g", "c", True)
    # Every word first, interleaved: token ids mix the two members' contexts in every block.
    mixed = "the ran cat home sat very on fast old and mat far by away door now"
    await brain.learn(Message("p", "g", "c", "alice", "mixed", mixed), require_consent=False)
    for i in range(60):
        author = ("alice", "bob")[i % 2]
        text = (
            f"the cat sat on the old mat by the door {i % 7}"
            if author == "alice"
            else f"the cat ran home very fast and far away now {i % 5}"
        )
        await brain.learn(Message("p", "g", "c", author, str(i), text), require_consent=False)
    await brain.flush()
    await brain.store.merged_while_idle()
    chain = await brain.store.find_chain(ChainKey("p", "g", "c"))
    assert chain is not None
    for table in ("transitions", "windows"):  # all in blocks, which a forget rewrites in place
        assert await rows_of(where, f"SELECT count(*) FROM {table}") == [(0,)]
    reports = brain.store.reports
    await reports.refresh(chain.id)
    ids = {word: await brain.store.token_id(word) for word in ("the", "cat", "sat", "ran")}
    ctx = chainmod.pack([ids["the"], ids["cat"]])
    before = await reports.top_successors(chain.id, ctx, 5)
    assert {b.token for b in before} == {ids["sat"], ids["ran"]}
    _, bobs = Fingerprinter(brain.store.key).guarded(
        tokenize("the cat ran home very fast and far away now 1"), chain.run_length, chain.scheme
    )
    assert await reports.windows_present(chain.id, bobs)
    held = await rows_of(where, "SELECT id FROM window_blocks ORDER BY id")
    bob_line = tuple(
        [await brain.store.token_id(w) for w in tokenize("the cat ran home very fast and far away now 1")]
    )
    found = await retention.extraction_candidates(brain, chain, 20, guided=True)
    assert bob_line in found  # every block and run it took to find it, cached
    await brain.forget("p", "g", "bob")
    assert await rows_of(where, "SELECT id FROM window_blocks ORDER BY id") == held  # rewritten in place
    # The attack refreshes first: with what it cached above, it would still find bob's line.
    found = await retention.extraction_candidates(brain, chain, 20, guided=True)
    assert found and bob_line not in found
    await reports.refresh(chain.id)  # done by the attack already: nothing left to drop
    assert await reports.top_successors(chain.id, ctx, 5) == [Branch(ids["sat"], 30, 30)]
    assert not await reports.windows_present(chain.id, bobs)
