"""markovbot against markovify on the same corpus, in one run.

    python -m benchmarks.bench                      # 100,000-message synthetic Zipf corpus
    python -m benchmarks.bench --messages 1000000   # community scale
    python -m benchmarks.bench --file corpus.txt    # any text file, one message per line
    python -m benchmarks.bench --chitchat           # real chat: chitchat-dataset's 258,112 messages
    python -m benchmarks.bench --postgres postgresql://root@127.0.0.1/test   # PostgreSQL beside SQLite

Each side runs in its own process, so peak RSS (VmHWM) is measured apart: markovify's build and
make_sentence (with its default overlap test); markovbot's ingest (tokenize, count, batched
SQLite commits: the path the bot uses), then generation in a fresh process (guarded and not),
the retention report, and generation while another chain ingests ~1,000 messages/s.
With --postgres (a server URL whose user may create databases), the same runs go again against a
fresh PostgreSQL database on that server, and a second table sets the two engines side by side.
Prints Markdown tables and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing as mp
import os
import platform
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty
from typing import Any

from benchmarks.corpus import CHITCHAT, write_chitchat_corpus, write_zipf_corpus

log = logging.getLogger(__name__)

AUTHORS = 100  # members of the live-learned chain: the one forgotten has 10,000 messages of 1,000,000 (#13)
CHAIN = ("bench", "bench", "main")
LIVE_RATE = 3000.0  # messages/s the live row feeds the learned chain (#13's target) ...
LIVE_SECONDS = 120.0  # ... for this long, generating from it meanwhile ...
LIVE_GENERATIONS = 20.0  # ... this many messages a second (a busy server's /markov generate and chimes)


def shipped_options() -> dict[str, Any]:
    """The Store options the bot runs with when nothing is configured (the writer, the walker)."""
    from bot.config import Settings

    return Settings.from_env({}, dotenv=False).store_options


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's peak resident set size (this one's by default), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def is_postgres(db: str) -> bool:
    """True when db is a PostgreSQL URL rather than a SQLite file."""
    return db.startswith(("postgresql://", "postgres://"))


async def _pg_size(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()


def db_bytes(db: str) -> int:
    """What the database takes on disk: the SQLite file and its log, or the PostgreSQL database."""
    if is_postgres(db):
        return asyncio.run(_pg_size(db))
    return sum(os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p))


async def _pg_database(server: str, name: str, drop_only: bool = False) -> str:
    """A fresh database on the server (dropped first if it exists); its URL."""
    from urllib.parse import urlsplit

    import asyncpg

    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return urlsplit(server)._replace(path=f"/{name}").geturl()


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) of latencies in seconds, returned in milliseconds."""
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return p50 * 1000, p99 * 1000


def run_markovify(corpus: str, calls: int) -> dict[str, Any]:
    """markovify's in-memory build and make_sentence with its default overlap test."""
    import markovify

    text = Path(corpus).read_text("utf-8")
    lines = text.count("\n")
    start = time.perf_counter()
    model = markovify.NewlineText(text, state_size=2)
    build = time.perf_counter() - start
    latencies, misses = [], 0
    for _ in range(calls):
        t = time.perf_counter()
        if model.make_sentence() is None:
            misses += 1
        latencies.append(time.perf_counter() - t)
    p50, p99 = percentiles(latencies)
    return {
        "messages": lines,
        "build_s": build,
        "build_msgs_per_s": lines / build,
        "sentence_p50_ms": p50,
        "sentence_p99_ms": p99,
        "sentence_none": misses,
        "peak_rss_mb": peak_rss_mb(),
    }


def _commit_gaps(brain: Any, stop: threading.Event, gaps: list[float]) -> None:
    """Seconds between the writer's commits, seen by polling its total every 5 ms (in a thread)."""
    last_n, last_t = brain.store.saved, time.perf_counter()
    while not stop.wait(0.005):
        n = brain.store.saved
        if n != last_n:
            now = time.perf_counter()
            gaps.append(now - last_t)
            last_n, last_t = n, now


async def _ingest(corpus: str, db: str) -> dict[str, Any]:
    from bot.core.brain import Brain
    from bot.core.models import Message

    brain = await Brain.open(db, **shipped_options())
    count = 0
    gaps: list[float] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_commit_gaps, args=(brain, stop, gaps), daemon=True)
    watcher.start()
    start = time.perf_counter()
    try:
        with open(corpus, encoding="utf-8") as f:
            for i, line in enumerate(f):
                text = line.rstrip("\n")
                if text:
                    await brain.learn(Message(*CHAIN, str(i % AUTHORS), str(i), text), require_consent=False)
                    count += 1
        await brain.flush()
        elapsed = time.perf_counter() - start
    finally:
        stop.set()
        watcher.join()
        await brain.close()
    ordered = sorted(gaps) or [float("nan")]
    return {
        "messages": count,
        "ingest_s": elapsed,
        "ingest_msgs_per_s": count / elapsed,
        "commit_gap_p50_s": ordered[len(ordered) // 2],
        "commit_gap_p90_s": ordered[int(len(ordered) * 0.9)],
        "commit_gap_max_s": ordered[-1],
    }


def run_ingest(corpus: str, db: str) -> dict[str, Any]:
    """markovbot ingest through Brain.learn and the batched writer."""
    result = asyncio.run(_ingest(corpus, db))
    result["peak_rss_mb"] = peak_rss_mb()
    result["db_bytes"] = db_bytes(db)
    return result


async def _wal_bytes(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT wal_bytes FROM pg_stat_wal"))
    finally:
        await conn.close()


def written_bytes(db: str = "") -> int:
    """Bytes this process has caused to be written to storage (/proc/self/io write_bytes); for
    PostgreSQL, the server's write-ahead log so far (its data pages follow at checkpoints)."""
    if is_postgres(db):
        return asyncio.run(_wal_bytes(db))
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


async def _import(corpus: str, db: str) -> dict[str, Any]:
    from bot.core.brain import Brain
    from bot.core.models import ChainKey
    from bot.importer import import_file
    from bot.runtime import settle_heap

    brain = await Brain.open(db, **shipped_options())
    settle_heap()  # as markovbot import does once the database is open
    try:
        before = await asyncio.to_thread(written_bytes, db)
        start = time.perf_counter()
        result = await import_file(brain, Path(corpus), ChainKey(*CHAIN), progress=False, workers=None)
        elapsed = time.perf_counter() - start
    finally:
        await brain.close()
    written = await asyncio.to_thread(written_bytes, db) - before
    return {
        "messages": result.learned,
        "import_s": elapsed,
        "import_msgs_per_s": result.learned / elapsed,
        "written_bytes": written,
    }


def run_import(corpus: str, db: str) -> dict[str, Any]:
    """markovbot import (one author, in large transactions), as `markovbot import` runs it."""
    result = asyncio.run(_import(corpus, db))
    result["peak_rss_mb"] = peak_rss_mb()
    result["db_bytes"] = db_bytes(db)
    result["text_bytes"] = os.path.getsize(corpus)
    return result


async def _latencies(brain: Any, key: Any, calls: int, guard: bool, seed: int) -> tuple[list[float], int]:
    """Seconds each of `calls` generations took, and how many found no text."""
    rng = random.Random(seed)
    latencies, failed = [], 0
    for _ in range(calls):
        t = time.perf_counter()
        result = await brain.generate(key, rng=rng, guard=guard)
        latencies.append(time.perf_counter() - t)
        failed += not result.ok
    return latencies, failed


async def _timed_generate(brain: Any, key: Any, calls: int, guard: bool, seed: int) -> dict[str, Any]:
    latencies, failed = await _latencies(brain, key, calls, guard, seed)
    p50, p99 = percentiles(latencies)
    return {"p50_ms": p50, "p99_ms": p99, "failed": failed}


async def _generate(db: str, calls: int) -> dict[str, Any]:
    from bot.core.brain import Brain
    from bot.core.models import ChainKey
    from bot.runtime import answer_promptly, settle_heap

    answer_promptly()  # as a running bot: bot.startup.open_brain
    brain = await Brain.open(db, **shipped_options(), in_background=True)
    settle_heap()  # as the bot does once started
    key = ChainKey(*CHAIN)
    try:
        cold = await _timed_generate(brain, key, 1, True, 0)
        guarded = await _timed_generate(brain, key, calls, True, 1)
        warm = await _timed_generate(brain, key, calls, True, 4)
        free = await _timed_generate(brain, key, calls, False, 2)
        walker = brain.store.walker_pid
        generating = (peak_rss_mb(), peak_rss_mb(walker) if walker is not None else 0.0)
        start = time.perf_counter()
        report = await brain.stats(key)
        stats_s = time.perf_counter() - start
        walker_rss = peak_rss_mb(walker) if walker is not None else 0.0
        bot_rss = peak_rss_mb()  # before the second report (the figure is of one)
        during = await _during_report(brain, key)
    finally:
        await brain.close()
    return {
        "walker_rss_mb": walker_rss,
        "bot_rss_mb": bot_rss,
        "generating_rss_mb": generating,  # (bot, walker) peaks before the report ran
        "first_ms": cold["p50_ms"],
        "guarded": guarded,
        "warm": warm,
        "unguarded": free,
        "stats_s": stats_s,
        "during_stats": during,
        "report": report.as_json(),
    }


async def _during_report(brain: Any, key: Any) -> dict[str, Any]:
    """Guarded messages asked for every 50 ms while a fresh report of the same chain runs (its walks
    and the messages share the walker): what one member waits while another asks for stats."""
    rng = random.Random(5)
    report = asyncio.create_task(brain.stats(key, fresh=True))
    latencies: list[float] = []
    while not report.done():
        start = time.perf_counter()
        await brain.generate(key, rng=rng, guard=True)
        latencies.append(time.perf_counter() - start)
        await asyncio.sleep(0.05)
    await report
    p50, p99 = percentiles(latencies)
    return {"p50_ms": p50, "p99_ms": p99, "max_ms": max(latencies) * 1000, "calls": len(latencies)}


async def _settle(db: str) -> dict[str, Any]:
    from bot.core.brain import Brain

    brain = await Brain.open(db, **shipped_options())
    try:
        start = time.perf_counter()
        await brain.store.merged_while_idle()  # what learning left in the deltas (bot.core.rolling)
        return {"merged_idle_s": time.perf_counter() - start}
    finally:
        await brain.close()


def run_settle(db: str) -> dict[str, Any]:
    """A bot that learns nothing, open until it has merged while idle what live learning left in the
    deltas: generation and stats are then timed on the chain as an idle bot keeps it."""
    return asyncio.run(_settle(db))


def run_generate(db: str, calls: int) -> dict[str, Any]:
    """Generation in a fresh process (caches start cold), then the retention report."""
    result = asyncio.run(_generate(db, calls))
    # The bot's process and its walker process, each at its peak (an upper bound of the two together).
    result["peak_rss_mb"] = result["bot_rss_mb"] + result["walker_rss_mb"]
    return result


async def _concurrent(db: str, corpus: str, rate: float, seconds: float) -> dict[str, Any]:
    from bot.core.brain import Brain
    from bot.core.models import ChainKey, Message
    from bot.runtime import answer_promptly, settle_heap

    answer_promptly()  # as a running bot: bot.startup.open_brain
    brain = await Brain.open(db, **shipped_options(), in_background=True)
    settle_heap()  # as the bot does once started
    key = ChainKey(*CHAIN)
    stop = asyncio.Event()
    fed = 0

    async def feed() -> None:
        nonlocal fed
        start = time.perf_counter()
        while not stop.is_set():  # the corpus again and again, under new message ids
            with open(corpus, encoding="utf-8") as f:
                for line in f:
                    if stop.is_set():
                        return
                    text = line.rstrip("\n")
                    message = Message(*CHAIN, str(AUTHORS + fed % AUTHORS), f"live{fed}", text)
                    await brain.learn(message, require_consent=False)
                    fed += 1
                    # each message a step of its own, as a gateway's events are, even when behind
                    await asyncio.sleep(max(0.0, fed / rate - (time.perf_counter() - start)))

    gaps: list[float] = []
    watching = threading.Event()
    watcher = threading.Thread(target=_commit_gaps, args=(brain, watching, gaps), daemon=True)
    feeder = asyncio.create_task(feed())
    latencies: list[float] = []
    try:
        await asyncio.sleep(1.0)
        watcher.start()
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            latencies += (await _latencies(brain, key, 1, True, len(latencies)))[0]
            await asyncio.sleep(max(0.0, start + len(latencies) / LIVE_GENERATIONS - time.perf_counter()))
        elapsed = time.perf_counter() - start
        saved, applied = (
            brain.store.saved,
            brain.store.committed,
        )  # durable (log or database); in the database
        watching.set()
        watcher.join()
        # Then a forget while the feed goes on: a member asks while the server is busy.
        backlog = brain.store.pending
        start = time.perf_counter()
        forgot = await brain.forget(CHAIN[0], CHAIN[1], "1")
        forget_s = time.perf_counter() - start
    finally:
        stop.set()
        watching.set()
        if watcher.is_alive():
            watcher.join()
        await feeder
        await brain.close()
    ordered = sorted(gaps) or [float("nan")]
    return {
        "p99_ms": percentiles(latencies)[1],
        "calls": len(latencies),
        "seconds": elapsed,
        "ingest_rate_during": saved / (elapsed + 1.0),
        "applied_rate_during": applied / (elapsed + 1.0),
        "ingest_target": rate,
        "commit_gap_p50_s": ordered[len(ordered) // 2],
        "commit_gap_p90_s": ordered[int(len(ordered) * 0.9)],
        "commit_gap_max_s": ordered[-1],
        "forget_s": forget_s,
        "forget_messages": forgot.messages,
        "forget_backlog": backlog,
    }


def run_concurrent(db: str, corpus: str, rate: float, seconds: float) -> dict[str, Any]:
    """Live learning at `rate` messages/s into the benchmark's chain for `seconds` (the corpus again,
    by 100 other members), and guarded generation from it meanwhile, LIVE_GENERATIONS a second; then,
    the feed going on, /markov forget of a member who wrote a hundredth of the corpus."""
    return asyncio.run(_concurrent(db, corpus, rate, seconds))


async def _forget(db: str) -> dict[str, Any]:
    from bot.core.brain import Brain

    brain = await Brain.open(db, **shipped_options())
    try:
        start = time.perf_counter()
        result = await brain.forget(CHAIN[0], CHAIN[1], "0")
        elapsed = time.perf_counter() - start
    finally:
        await brain.close()
    return {"forget_s": elapsed, "messages": result.messages}


def run_forget(db: str) -> dict[str, Any]:
    """/markov forget of one of the members (a hundredth of the messages), timed; the last step (it changes the file)."""
    return asyncio.run(_forget(db))


def _child(fn: Callable[..., dict[str, Any]], args: tuple[Any, ...], queue: mp.Queue[Any]) -> None:
    logging.basicConfig(level=logging.WARNING)
    queue.put(fn(*args))


def in_process(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run fn in a fresh process and return its result (so its peak RSS is its own)."""
    ctx = mp.get_context("spawn")
    queue: mp.Queue[Any] = ctx.Queue()
    process = ctx.Process(target=_child, args=(fn, args, queue))
    process.start()
    while True:
        alive = process.is_alive()  # asked first: what it put before it ended is read below
        try:
            result: dict[str, Any] = queue.get(timeout=1.0)
            break
        except Empty:
            if not alive:
                raise RuntimeError(
                    f"{fn.__name__} ended without a result (exit code {process.exitcode})"
                ) from None
    process.join()
    return result


def machine() -> str:
    """A one-line description of this machine."""
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return (
        f"{os.cpu_count()} cores, {cpu}, {int(mem) / 1024**2:.0f} GiB RAM, Python {platform.python_version()}"
    )


def table(r: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    mk, ing, gen, con, imp = r["markovify"], r["ingest"], r["generate"], r["concurrent"], r["import"]
    rep = gen["report"]
    rows = [
        ("messages", f"{mk['messages']:,}", f"{ing['messages']:,}", ""),
        (
            "bulk import (msgs/s)",
            f"{mk['build_msgs_per_s']:,.0f} (in RAM)",
            f"{imp['import_msgs_per_s']:,.0f} (`markovbot import`, one author, committed)",
            f"{imp['import_msgs_per_s'] / mk['build_msgs_per_s']:.2f}×",
        ),
        (
            "import: on disk; written",
            f"text {imp['text_bytes'] / 1e6:,.1f} MB",
            f"{imp['db_bytes'] / 1e6:,.1f} MB; {imp['written_bytes'] / 1e6:,.1f} MB written; "
            f"peak RSS {imp['peak_rss_mb']:,.0f} MB",
            f"file ÷ text {imp['db_bytes'] / imp['text_bytes']:.2f}; "
            f"written ÷ file {imp['written_bytes'] / imp['db_bytes']:.2f}",
        ),
        (
            "build / live ingest (msgs/s)",
            f"{mk['build_msgs_per_s']:,.0f} (in RAM)",
            f"{ing['ingest_msgs_per_s']:,.0f} (live: {AUTHORS} members; seconds between commits p50 "
            f"{ing['commit_gap_p50_s']:.2f}, p90 {ing['commit_gap_p90_s']:.2f}, max {ing['commit_gap_max_s']:.2f})",
            f"{ing['ingest_msgs_per_s'] / mk['build_msgs_per_s']:.2f}×",
        ),
        (
            "one message p50 / p99 (ms)",
            f"{mk['sentence_p50_ms']:.2f} / {mk['sentence_p99_ms']:.2f} (make_sentence, overlap test)",
            f"{gen['guarded']['p50_ms']:.2f} / {gen['guarded']['p99_ms']:.2f} (copy guard on, "
            f"first {r['calls']:,} calls of a fresh process)",
            f"{mk['sentence_p99_ms'] / gen['guarded']['p99_ms']:.1f}× faster at p99",
        ),
        (
            "… the next calls, caches warm (ms)",
            "",
            f"{gen['warm']['p50_ms']:.2f} / {gen['warm']['p99_ms']:.2f} ({r['calls']:,} calls)",
            "",
        ),
        (
            "unguarded p50 / p99 (ms)",
            "",
            f"{gen['unguarded']['p50_ms']:.2f} / {gen['unguarded']['p99_ms']:.2f}",
            "",
        ),
        (
            "no output",
            f"{mk['sentence_none']} of {r['calls']}",
            f"{gen['guarded']['failed']} of {r['calls']} (guard found no non-copy)",
            "",
        ),
        (
            "peak RSS generating (MB)",
            f"{mk['peak_rss_mb']:,.0f} (model in RAM)",
            f"{sum(gen['generating_rss_mb']):,.0f} (bot {gen['generating_rss_mb'][0]:,.0f} + walker "
            f"{gen['generating_rss_mb'][1]:,.0f}, each at its peak)",
            f"{sum(gen['generating_rss_mb']) / mk['peak_rss_mb']:.0%} of markovify",
        ),
        (
            "peak RSS, /markov stats included (MB)",
            "",
            f"{gen['peak_rss_mb']:,.0f} (bot {gen['peak_rss_mb'] - gen['walker_rss_mb']:,.0f} + walker "
            f"{gen['walker_rss_mb']:,.0f}, each at its peak)",
            f"{gen['peak_rss_mb'] / mk['peak_rss_mb']:.0%} of markovify",
        ),
        ("peak RSS ingesting (MB)", "", f"{ing['peak_rss_mb']:,.0f}", ""),
        (
            "on disk",
            "nothing (in RAM only)",
            f"{ing['db_bytes'] / 1e6:,.1f} MB, {ing['db_bytes'] / rep['tokens_seen']:.1f} B per token",
            "",
        ),
        ("kept ÷ seen", "", f"{rep['kept_ratio']:.2f}", ""),
        ("/markov stats (s)", "", f"{gen['stats_s']:.2f}", ""),
        (
            "one message while /markov stats runs again, p50 / p99 / max (ms)",
            "",
            f"{gen['during_stats']['p50_ms']:.2f} / {gen['during_stats']['p99_ms']:.2f} / "
            f"{gen['during_stats']['max_ms']:.2f} ({gen['during_stats']['calls']} calls)",
            "",
        ),
        ("deltas merged while idle, after learning (s)", "", f"{r['settle']['merged_idle_s']:.1f}", ""),
        (
            "/markov forget of one member (s)",
            "",
            f"{r['forget']['forget_s']:.2f} ({r['forget']['messages']:,} messages)",
            "",
        ),
        (
            f"live at {con['ingest_target']:,.0f} msgs/s into the chain: learned (msgs/s); guarded p99 (ms)",
            "",
            f"{con['ingest_rate_during']:,.0f} for {con['seconds']:.0f} s, "
            f"{con['applied_rate_during']:,.0f} of them applied to the database (seconds between commits "
            f"p50 {con['commit_gap_p50_s']:.2f}, p90 {con['commit_gap_p90_s']:.2f}, "
            f"max {con['commit_gap_max_s']:.2f}); p99 {con['p99_ms']:.2f} over {con['calls']:,} calls",
            "",
        ),
        (
            f"/markov forget of another member while {con['ingest_target']:,.0f} msgs/s arrive (s)",
            "",
            f"{con['forget_s']:.2f} ({con['forget_messages']:,} messages; "
            f"{con['forget_backlog']:,} queued when asked)",
            "",
        ),
    ]
    lines = [
        f"{r['corpus']} — {r['machine']} — {r['date']}",
        "",
        "| figure | markovify 0.9.4 | markovbot | ratio |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000, help="synthetic corpus size")
    parser.add_argument("--file", type=Path, help="a text file to use instead (one message per line)")
    parser.add_argument(
        "--chitchat",
        action="store_true",
        help='real chat instead: chitchat-dataset (pip install -e ".[bench]")',
    )
    parser.add_argument("--calls", type=int, default=1000, help="generations timed on each side")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument(
        "--postgres",
        help="a PostgreSQL server URL: run the engine's figures there too (databases markov_bench*)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.file:
            corpus, label = str(args.file), f"corpus {args.file.name}"
        elif args.chitchat:
            corpus = os.path.join(tmp, "chitchat.txt")
            label = f"{CHITCHAT}, {write_chitchat_corpus(corpus):,} messages"
        else:
            corpus = os.path.join(tmp, "corpus.txt")
            write_zipf_corpus(corpus, args.messages, seed=args.seed)
            label = f"synthetic Zipf corpus, {args.messages:,} messages, seed {args.seed}"
        db = os.path.join(tmp, "bench.sqlite3")
        results: dict[str, Any] = {
            "corpus": label,
            "machine": machine(),
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "calls": args.calls,
        }
        results["markovify"] = in_process(run_markovify, corpus, min(args.calls, 200))
        results.update(engine_runs(corpus, os.path.join(tmp, "import.sqlite3"), db, args.calls))
        if args.postgres:
            pg_import = asyncio.run(_pg_database(args.postgres, "markov_bench_import"))
            pg_db = asyncio.run(_pg_database(args.postgres, "markov_bench"))
            try:
                results["postgresql"] = engine_runs(corpus, pg_import, pg_db, args.calls)
            finally:
                for name in ("markov_bench_import", "markov_bench"):
                    asyncio.run(_pg_database(args.postgres, name, drop_only=True))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (args.out / f"bench-{stamp}.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    if "postgresql" in results:
        print()
        print(engines_table(results))
    return results


def engine_runs(corpus: str, import_db: str, db: str, calls: int) -> dict[str, Any]:
    """One engine's runs, each in a fresh process: import into import_db; ingest, generate, and forget in db."""
    return {
        "import": in_process(run_import, corpus, import_db),
        "ingest": in_process(run_ingest, corpus, db),
        "settle": in_process(run_settle, db),
        "generate": in_process(run_generate, db, calls),
        "forget": in_process(run_forget, db),
        "concurrent": in_process(run_concurrent, db, corpus, LIVE_RATE, LIVE_SECONDS),
    }


def engines_table(r: dict[str, Any]) -> str:
    """SQLite and PostgreSQL side by side, with markovify's build as the yardstick."""
    mk, pg = r["markovify"], r["postgresql"]
    build = mk["build_msgs_per_s"]

    def both(fn: Callable[[dict[str, Any]], str]) -> tuple[str, str]:
        return fn(r), fn(pg)

    rows = [
        (
            "bulk import (msgs/s)",
            *both(
                lambda e: (
                    f"{e['import']['import_msgs_per_s']:,.0f} "
                    f"({e['import']['import_msgs_per_s'] / build:.2f}×)"
                )
            ),
        ),
        (
            "live ingest (msgs/s)",
            *both(
                lambda e: (
                    f"{e['ingest']['ingest_msgs_per_s']:,.0f} "
                    f"({e['ingest']['ingest_msgs_per_s'] / build:.2f}×)"
                )
            ),
        ),
        (
            "guarded p50 / p99, first calls (ms)",
            *both(
                lambda e: (
                    f"{e['generate']['guarded']['p50_ms']:.2f} / {e['generate']['guarded']['p99_ms']:.2f}"
                )
            ),
        ),
        ("guarded p99 while ingesting (ms)", *both(lambda e: f"{e['concurrent']['p99_ms']:.2f}")),
        ("/markov stats (s)", *both(lambda e: f"{e['generate']['stats_s']:.2f}")),
        ("/markov forget of one member (s)", *both(lambda e: f"{e['forget']['forget_s']:.2f}")),
        ("… of another while learning live (s)", *both(lambda e: f"{e['concurrent']['forget_s']:.2f}")),
        (
            "on disk ÷ text (import)",
            *both(lambda e: f"{e['import']['db_bytes'] / e['import']['text_bytes']:.2f}"),
        ),
        ("written during the import (MB)", *both(lambda e: f"{e['import']['written_bytes'] / 1e6:,.0f}")),
        ("peak RSS generating (MB)", *both(lambda e: f"{sum(e['generate']['generating_rss_mb']):,.0f}")),
    ]
    lines = [
        f"Both engines — markovify builds {build:,.0f} msgs/s in RAM in this run",
        "",
        "| figure | SQLite | PostgreSQL |",
        "|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
