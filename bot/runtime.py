"""Process-wide tuning applied once a bot or command has started."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import Iterator

from bot.core import background

log = logging.getLogger(__name__)

#: Allocations between two collections of young objects during an import (Python's default: 700).
#: An import keeps tens of thousands of queued messages alive: at 258,112 messages the collector
#: ran 1,670 times and 13 full collections scanned everything, 1.3 s in all with every thread
#: stopped meanwhile. At 50,000: 102 runs, 0.34 s; at 1,000,000: 0.03 s, and the import 5% faster
#: (one run, alternated: 0.760 of markovify's rate against 0.723; with no collector at all, 0.766).
#: Messages and rows hold no cycles: what a collection would find is the odd future or traceback.
IMPORT_GC_THRESHOLD = 1_000_000

#: Seconds a thread may keep the interpreter lock while another waits for it (Python's default: 0.005).
#: A running bot's event loop takes turns on the lock with the writer's threads (counting a batch,
#: SQLite's connection), and at 3,000 msgs/s learned a reply ready to go waited behind their turns.
#: The live row, alternated 5 times (benchmarks/README.md, 2026-12-02): guarded p99 38.4 ms mean at
#: 1 ms against 47.2 at 5, lower in each pair, the messages applied as many or more.
SWITCH_INTERVAL = 0.001

_importing = 0  # imports running in this process
_thresholds = gc.get_threshold()  # the collector's, before the first of them


def settle_heap() -> None:
    """Move everything allocated at start-up out of the garbage collector's sight.

    Imports, settings and the opened store live as long as the process; left tracked, every
    full collection re-scans them and stops all threads meanwhile (up to 150 ms under the load
    test, the worst generate latencies). Frozen, a full collection only scans what came after.
    """
    gc.collect()
    gc.freeze()
    log.debug("heap settled: %d objects frozen", gc.get_freeze_count())


def answer_promptly() -> None:
    """A running bot, before it opens its store: busy threads hand the interpreter lock back to the
    event loop sooner (SWITCH_INTERVAL), and the loop's threads for blocking work (counting and
    sealing batches, mostly) run in the background (bot.core.background; the store's own connections
    with Store(in_background=True))."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    asyncio.get_running_loop().set_default_executor(background.executor())


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect young objects every IMPORT_GC_THRESHOLD allocations meanwhile (the collector's
    thresholds back as they were once the last import running in this process ends)."""
    global _importing, _thresholds
    if not _importing:
        _thresholds = gc.get_threshold()
        gc.set_threshold(max(IMPORT_GC_THRESHOLD, _thresholds[0]), *_thresholds[1:])
    _importing += 1
    try:
        yield
    finally:
        _importing -= 1
        if not _importing:
            gc.set_threshold(*_thresholds)
