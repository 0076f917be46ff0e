"""Where ingest time goes: markovify's whole build against each stage of markovbot's, run alone.

    python -m benchmarks.write_floor                     # 100,000-message synthetic Zipf corpus
    python -m benchmarks.write_floor --messages 20000    # smaller
    python -m benchmarks.write_floor --file corpus.txt   # any text file, one message per line

Each stage runs alone, on one thread, over the same corpus: tokenizing, fingerprinting, counting
(the store's own aggregation, in batches of the writer's size) and then the SQL only: the
store's named statements, run with sqlite3 on rows computed beforehand, one transaction a batch,
with the store's pragmas. No event loop, no queue, no thread hops: the SQL figure is a floor
under what any Python front end over this schema can reach.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.corpus import write_zipf_corpus

AUTHORS = 50
BATCH = 2000  # the writer's default batch_size


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def stages(corpus: str, db: str) -> dict[str, float]:
    """Seconds spent by markovify's build and by each stage of markovbot's ingest, for the corpus."""
    import markovify

    from bot.core import chain as chainmod
    from bot.core.fingerprints import Fingerprinter
    from bot.core.models import ChainInfo, PendingMessage
    from bot.core.schema import MIGRATION_FUNCTIONS, migrations
    from bot.core.sql import Q
    from bot.core.store import WRITER_CACHE_KIB
    from bot.core.tokens import tokenize
    from bot.core.writer import _aggregate, message_rows

    text = Path(corpus).read_text("utf-8")
    lines = [line for line in text.splitlines() if line]
    seconds: dict[str, float] = {"messages": len(lines)}
    _, seconds["markovify build"] = _timed(lambda: markovify.NewlineText(text, state_size=2))

    tokens, seconds["tokenize"] = _timed(lambda: [tuple(tokenize(line)) for line in lines])
    fingerprints = Fingerprinter(b"\x00" * 16)
    fps, seconds["fingerprints"] = _timed(
        lambda: [(fingerprints.message(t), tuple(fingerprints.windows(t, 8))) for t in tokens]
    )

    chain = ChainInfo(1, 2, 8)
    vocabulary = {
        t: i for i, t in enumerate(sorted({t for ts in tokens for t in ts}), chainmod.FIRST_TOKEN_ID)
    }
    pending = [
        PendingMessage(
            "bench", str(i), chain, i % AUTHORS + 1, ts, fp, None, windows, len(line), len(line.encode())
        )
        for i, (line, ts, (fp, windows)) in enumerate(zip(lines, tokens, fps, strict=True))
    ]
    batches, seconds["counting"] = _timed(
        lambda: [_aggregate(pending[i : i + BATCH], vocabulary) for i in range(0, len(pending), BATCH)]
    )

    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", f"cache_size = -{WRITER_CACHE_KIB}"):
            conn.execute(f"PRAGMA {pragma}")
        for name, arity, function in MIGRATION_FUNCTIONS:
            conn.create_function(name, arity, function, deterministic=True)
        for _, sql in migrations():
            conn.executescript(sql)
        conn.execute(
            "INSERT INTO chains (id, platform, guild, channel, ord, run_length) VALUES (1, 'b', 'b', 'b', 2, 8)"
        )
        conn.executemany(
            "INSERT INTO authors (id, platform, guild, external_id) VALUES (?, 'b', 'b', ?)",
            [(a, str(a)) for a in range(1, AUTHORS + 1)],
        )
        sql_time: Counter[str] = Counter()

        def run(name: str, sql: str, rows: Any) -> None:
            start = time.perf_counter()
            conn.executemany(sql, rows) if rows is not None else conn.execute(sql)
            sql_time[name] += time.perf_counter() - start

        stored: set[str] = set()
        for n, (counted, window_rows, refs, _) in enumerate(batches):
            batch = pending[n * BATCH : (n + 1) * BATCH]
            fresh = {t for item in batch for t in item.tokens} - stored
            stored |= fresh
            new = sorted((vocabulary[t], t) for t in fresh)
            run("begin", "BEGIN IMMEDIATE", None)
            run("tokens", Q["insert_token"], new)
            run("transitions", Q["upsert_transition"], [row for c in counted for row in c.rows()])
            run("windows", Q["upsert_window"], window_rows)
            run("messages", Q["insert_message"], message_rows(batch))
            run("token refs", Q["add_token_refs"], ((k, t) for t, k in refs.items()))
            run("commit", "COMMIT", None)
    finally:
        conn.close()
    seconds.update({f"SQL: {name}": s for name, s in sql_time.items() if name != "begin"})
    seconds["SQL, all"] = sum(sql_time.values())
    return seconds


def table(seconds: dict[str, float]) -> str:
    """A Markdown table: microseconds per message, and each as a multiple of markovify's build."""
    n = seconds["messages"]
    base = seconds["markovify build"]
    lines = [
        f"{int(n):,} messages, one thread each",
        "",
        "| stage | µs per message | × markovify's whole build |",
        "|---|---|---|",
    ]
    for name, s in seconds.items():
        if name != "messages":
            lines.append(f"| {name} | {s / n * 1e6:.1f} | {s / base:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the stages and print their table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000, help="synthetic corpus size")
    parser.add_argument("--file", type=Path, help="a text file to use instead (one message per line)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = str(args.file) if args.file else os.path.join(tmp, "corpus.txt")
        if not args.file:
            write_zipf_corpus(corpus, args.messages, seed=args.seed)
        seconds = stages(corpus, os.path.join(tmp, "floor.sqlite3"))
    print(table(seconds))
    return seconds


if __name__ == "__main__":
    main()
