"""Preparing messages for the writer: tokens and keyed fingerprints, here or in a worker process.

What preparing a message means is said once, here: `fingerprinted` (from its tokens, as live
learning and unlearning by id have them). Live learning prepares one message at a time on the
event loop; an import prepares batches as columns (`prepare_all`, bot.core.columns) through a
Preparer, in a worker process with workers=1 so that this process only writes (the results are
the same: the same fingerprints are made, tests/core/test_preparing.py holds them to it).

The worker gets the fingerprint key from its initializer, which multiprocessing's spawn sends it
over a pipe: never in its command line or environment, and it is never logged. It ignores Ctrl-C
(the terminal sends it to the whole process group): this process stops it, on any exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import multiprocessing
import signal
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from bot.core import fingerprints, pools
from bot.core.columns import Columns, Ints, indexed, ints
from bot.core.fingerprints import Fingerprinter
from bot.core.messagekeys import message_keys
from bot.core.models import ChainInfo, PendingMessage
from bot.core.tokens import tokenize

log = logging.getLogger(__name__)

_NONE = np.empty(0, dtype=np.int64)

#: What an import with a worker takes off its budget: the worker and the resource tracker spawn starts
#: beside it (40 + 13 MB at 1,000,000 messages), and the next batch, which the import now gathers whole
#: while the writer commits one (the main process peaked at 1,017 MB with 64 taken off, 902 with 160).
WORKER_MB = 160

#: A prepared message: (tokens, fingerprint of the exact tokens, normalised fingerprint or None, windows).
Prepared = tuple[tuple[str, ...], int, int | None, tuple[int, ...]]
#: A prepared batch: the texts that hold a token, as columns (their chains and authors still 0), and
#: where each is among the texts.
Batch = tuple[Columns, Ints]


def fingerprinted(fp: Fingerprinter, tokens: tuple[str, ...], run_length: int, scheme: int) -> Prepared:
    """A message's tokens with the fingerprints of its chain's scheme and run length."""
    normal, windows = fp.guarded(tokens, run_length, scheme)
    return tokens, fp.message(tokens), normal, tuple(windows)


def pending(
    platform: str,
    message_id: str,
    info: ChainInfo,
    author_id: int,
    prepared: Prepared,
    chars: int,
    size: int,
    keep: bool = True,
) -> PendingMessage:
    """A prepared message as the writer takes it."""
    tokens, fingerprint, normal, windows = prepared
    return PendingMessage(
        platform, message_id, info, author_id, tokens, fingerprint, normal, windows, chars, size, keep
    )


def prepare_all(
    fp: Fingerprinter, texts: Sequence[str], run_length: int, scheme: int, platform: str, ids: Sequence[str]
) -> Batch:
    """The texts that hold a token, tokenized and fingerprinted (their ids' keys on platform), as columns;
    and where each is among the texts."""
    each = [tokenize(text) for text in texts]
    kept = ints([i for i, tokens in enumerate(each) if tokens])
    where = kept.tolist()
    picked = [each[i] for i in where]
    n = len(picked)
    lengths = ints(map(len, picked), n)
    vocab, tokens = indexed(list(itertools.chain.from_iterable(picked)))
    prepared = Columns(
        keys=message_keys(platform, [ids[i] for i in where]),
        chains=np.zeros(n, dtype=np.int64),
        orders=np.zeros(n, dtype=np.int64),
        authors=np.zeros(n, dtype=np.int64),
        chars=ints([len(texts[i]) for i in where], n),
        sizes=ints([len(texts[i].encode("utf-8", "surrogatepass")) for i in where], n),
        keep=np.zeros(n, dtype=np.bool_),
        lengths=lengths,
        vocab=vocab,
        tokens=tokens,
        fingerprints=_NONE,  # made by refit
        normals=_NONE,
        formed=np.zeros(0, dtype=np.bool_),
        window_counts=_NONE,
        windows=_NONE,
    )
    return refit(fp, prepared, run_length, scheme, picked), kept


def refit(
    fp: Fingerprinter,
    batch: Columns,
    run_length: int,
    scheme: int,
    messages: Sequence[Sequence[str]] | None = None,
) -> Columns:
    """A batch fingerprinted (again) with a scheme and run length (its chain's); messages: its tokens,
    when at hand. Under scheme 3 its messages are fingerprinted together (Fingerprinter.guarded_columns)."""
    if messages is None:
        messages = batch.token_tuples()
    exact = fp.messages(messages)
    if scheme == fingerprints.PER_TOKEN:
        forms, counts, runs = fp.guarded_columns(batch.vocab, batch.tokens, batch.lengths, run_length)
        return dataclasses.replace(
            batch,
            fingerprints=exact,
            normals=forms,
            formed=np.ones(len(messages), dtype=np.bool_),
            window_counts=counts,
            windows=runs,
        )
    guarded = [fp.guarded(tokens, run_length, scheme) for tokens in messages]
    return dataclasses.replace(
        batch,
        fingerprints=exact,
        normals=ints([normal or 0 for normal, _ in guarded], len(messages)),
        formed=np.array([normal is not None for normal, _ in guarded], dtype=np.bool_),
        window_counts=ints([len(windows) for _, windows in guarded], len(messages)),
        windows=ints(itertools.chain.from_iterable([windows for _, windows in guarded])),
    )


# ---------------------------------------------------------------- the worker process

_worker_fp: Fingerprinter | None = None  # in a worker: its fingerprinter


def _start_worker(key: bytes) -> None:
    """A worker's initializer: keep the key's fingerprinter; leave Ctrl-C to the parent."""
    global _worker_fp
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_fp = Fingerprinter(key)


def _worker_ready() -> None:
    """A worker's first task: done once it runs (see Preparer.submit)."""


def _prepare_in_worker(
    texts: Sequence[str], run_length: int, scheme: int, platform: str, ids: Sequence[str]
) -> Batch:
    assert _worker_fp is not None, "the worker was started without its key"
    return prepare_all(_worker_fp, texts, run_length, scheme, platform, ids)


DIED = (
    "the import's worker process ended before it answered (killed, out of memory, or it could not "
    "start: its error is printed above); nothing of the unfinished batch was committed"
)


class PreparerDied(RuntimeError):
    """The worker process ended (killed, out of memory, or it could not start) before it answered."""


class Preparer:
    """Prepares batches of texts, in this process (workers=0) or in one worker process (workers=1).

    A worker takes a few tenths of a second to start (a new interpreter importing numpy): the
    batches submitted meanwhile are prepared here, while this process has nothing else to do yet.
    """

    def __init__(self, fp: Fingerprinter, key: bytes, workers: int) -> None:
        if workers not in (0, 1):
            raise ValueError(f"workers must be 0 or 1, not {workers}")
        self.fp = fp
        self._key = key
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._started: asyncio.Future[None] | None = None  # done once the worker runs

    def start(self) -> None:
        """Start the worker (a spawned process: this one runs threads, which fork would copy half-made)."""
        if self.workers:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self._key,),
            )
            with contextlib.suppress(BrokenProcessPool):  # shows at the first batch submitted
                self._started = pools.run(asyncio.get_running_loop(), self._pool, _worker_ready)

    async def started(self) -> None:
        """Wait until the worker runs, so that batches go to it (at once without one)."""
        if self._started is not None:
            await self._started

    def submit(
        self, texts: Sequence[str], run_length: int, scheme: int, platform: str, ids: Sequence[str]
    ) -> asyncio.Future[Batch]:
        """Prepare texts (and hash ids); in a worker, this returns at once and the future resolves when
        it is done."""
        loop = asyncio.get_running_loop()
        if self._pool is None or (self._started is not None and not self._started.done()):
            future: asyncio.Future[Batch] = loop.create_future()
            future.set_result(prepare_all(self.fp, texts, run_length, scheme, platform, ids))
            return future
        try:
            return pools.run(
                loop, self._pool, _prepare_in_worker, list(texts), run_length, scheme, platform, list(ids)
            )
        except BrokenProcessPool as exc:
            raise PreparerDied(DIED) from exc

    async def result(self, future: asyncio.Future[Batch]) -> Batch:
        """A submitted batch's messages, prepared; PreparerDied when the worker ended first."""
        while not (await asyncio.wait({future}, timeout=WATCH_SECONDS))[0]:
            if self._pool is not None and pools.died(
                self._pool
            ):  # the pool itself may never notice (see stop)
                raise PreparerDied(DIED)
        try:
            return future.result()
        except BrokenProcessPool as exc:
            raise PreparerDied(DIED) from exc

    def stop(self) -> None:
        """Stop the worker: what is queued is dropped, a batch under way finishes, the process is joined."""
        pool, self._pool = self._pool, None
        started, self._started = self._started, None
        if started is not None and started.done() and not started.cancelled():
            started.exception()  # retrieved: a worker that died is reported once, by the batch it failed
        if pool is None:
            return
        pools.stop(pool)


WATCH_SECONDS = 1.0  # how often a wait for the worker checks that it is still alive


@contextlib.asynccontextmanager
async def preparer(fp: Fingerprinter, key: bytes, workers: int) -> AsyncIterator[Preparer]:
    """A started Preparer, stopped (its worker joined) however the block ends."""
    prep = Preparer(fp, key, workers)
    prep.start()
    try:
        yield prep
    finally:
        # Joined in a thread, so the event loop runs meanwhile; shielded, so a second Ctrl-C
        # cannot leave the worker behind.
        await asyncio.shield(asyncio.to_thread(prep.stop))
