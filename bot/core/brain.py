"""The Brain: the one API every adapter calls. Consent and data rules are enforced here.

Deletes and edits after a restart: the platform then only gives a message id, and no text is
stored. The store keeps each message learned within the edit window (MARKOV_EDIT_WINDOW_DAYS,
default 7) as token ids in recent_messages; unlearn_id rebuilds the tokens from that row, checks
them against the message's fingerprint, and subtracts exactly. A message learned earlier (or
with a window of 0) can only be unlearned with its text, as the front end's cache may have it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from bot.core import preparing, retention
from bot.core.batchlearn import BatchLearner
from bot.core.deferred import Deferred, Kind, by_id
from bot.core.fingerprints import Fingerprinter
from bot.core.generation import Generation
from bot.core.models import (
    ChainInfo,
    ChainKey,
    ChainSummary,
    FlushResult,
    ForgetResult,
    Generated,
    GenerateStatus,
    GuildSettings,
    LearnResult,
    LearnStatus,
    MemberInfo,
    Message,
    PendingMessage,
    UnlearnStatus,
)
from bot.core.patience import Debt, Patience
from bot.core.schema import StoreError
from bot.core.store import Store
from bot.core.tokens import tokenize

log = logging.getLogger(__name__)


DEFAULT_TRIES = 25
# Seconds of copy-guard retries per reply: a chain that only replays its source says so at once
# instead of walking all its tries (the test load's p99 went from 280 ms to 35 ms).
DEFAULT_GUARD_BUDGET = 0.02
REPORT_TTL = 300.0  # seconds a retention report is reused while its chain is unchanged
MAX_MESSAGE_CHARS = 4000  # the longest message Discord allows; longer ones are not learned


class Brain:
    """Learn, unlearn, forget, generate and report, over one Store."""

    def __init__(
        self,
        store: Store,
        *,
        tries: int = DEFAULT_TRIES,
        guard_budget: float = DEFAULT_GUARD_BUDGET,
        max_message_chars: int = MAX_MESSAGE_CHARS,
    ) -> None:
        self.store = store
        self.max_message_chars = max_message_chars
        self.tries = tries
        self.guard_budget = guard_budget
        self._fingerprinter: Fingerprinter | None = None
        self._reports: dict[ChainKey, tuple[tuple[int, int] | None, float, retention.RetentionReport]] = {}
        # One report at a time: each holds the chain's scans in memory (140 MB more at 1,000,000 messages),
        # and a second ask for the same chain meanwhile then gets the first's report from the cache.
        self._reporting = asyncio.Lock()
        self._generation = Generation(store)
        self._patience = Patience(store, self._make)  # deletes, edits and first messages the database refused

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], *, max_message_chars: int = MAX_MESSAGE_CHARS, **store_options: Any
    ) -> Brain:
        """Open the database at path and return a Brain over it."""
        store = await Store(path, **store_options).open()
        return cls(store, max_message_chars=max_message_chars)

    async def close(self) -> None:
        """Flush pending learning and close the store (changes still waiting their turn are kept)."""
        await self._patience.stop()
        await self.store.close()

    def catch_up(self) -> asyncio.Task[int]:
        """Make, in the background, the changes kept because the database refused them (an earlier
        run's, at a start: bot.core.patience); the task returns how many it made."""
        return self._patience.catch_up()

    @property
    def catching_up(self) -> asyncio.Task[int] | None:
        """The task catch_up() started last, if any."""
        return self._patience.catching_up

    async def _make(self, change: Deferred, debt: Debt) -> None:
        """Make a change kept by an earlier run, as the call it was."""
        message = change.message
        match change.kind:
            case Kind.LEARN:
                await self._learn(message, change.require_consent, change.deletable, debt)
            case Kind.UNLEARN:
                await self._unlearn(message, debt)
            case Kind.DELETE:
                await self._delete(message, debt)
            case Kind.EDIT:
                await self._edit(change.before, message, debt)

    @property
    def written(self) -> FlushResult:
        """Messages committed, and dropped as already learned, since the database was opened."""
        return FlushResult(self.store.committed, self.store.duplicates)

    async def flush(self) -> FlushResult:
        """Commit all pending learning now."""
        return await self.store.flush()

    async def settle(self) -> None:
        """Commit what is queued, so that a report made next counts it; when the database cannot be
        written now (another process holds it, a full disk), the report counts what was committed
        (logged), and what is queued is committed once it can be. With nothing queued it writes
        nothing, so it waits for no other write."""
        try:
            await self.store.flush(prune=False)
        except StoreError as exc:
            log.info("reporting without what is still queued: %s", exc)

    def bulk(self, reserve_mb: int = 0) -> contextlib.AbstractAsyncContextManager[None]:
        """Learn in a few large transactions while the block runs (an import; see Store.bulk)."""
        return self.store.bulk(reserve_mb)

    @property
    def keeps_recent(self) -> bool:
        """True when deletes and edits can be unlearned by id alone (the edit window is not 0)."""
        return self.store.keeps_recent

    @property
    def fingerprints(self) -> Fingerprinter:
        """The fingerprinter, keyed with this database's fingerprint key."""
        if self._fingerprinter is None:
            self._fingerprinter = Fingerprinter(self.store.key)
        return self._fingerprinter

    # ---------------------------------------------------------------- consent and channels

    async def opt_in(self, platform: str, guild: str, member: str) -> bool:
        """Let the bot learn from a member in a guild; True when newly opted in."""
        return await self.store.write(self.store.guild_state.set_consent(platform, guild, member, True))

    async def opt_out(self, platform: str, guild: str, member: str) -> bool:
        """Stop learning from a member at once (what was learned stays until forget)."""
        return await self.store.write(self.store.guild_state.set_consent(platform, guild, member, False))

    async def is_opted_in(self, platform: str, guild: str, member: str) -> bool:
        """True when the member opted in in this guild."""
        return member in await self.store.guild_state.consenting(platform, guild)

    async def set_channel(self, platform: str, guild: str, channel: str, enabled: bool) -> bool:
        """Enable or disable learning in a channel; True when that changed something."""
        return await self.store.write(self.store.guild_state.set_channel(platform, guild, channel, enabled))

    async def is_enabled(self, platform: str, guild: str, channel: str) -> bool:
        """True when learning is enabled in the channel."""
        return channel in await self.store.guild_state.enabled_channels(platform, guild)

    async def enabled_channels(self, platform: str, guild: str) -> set[str]:
        """The channels of a guild where learning is enabled."""
        return set(await self.store.guild_state.enabled_channels(platform, guild))

    async def settings(self, platform: str, guild: str) -> GuildSettings:
        """A guild's settings."""
        return await self.store.guild_state.settings(platform, guild)

    async def update_settings(self, platform: str, guild: str, **changes: Any) -> GuildSettings:
        """Change some settings; on a bad value raise ValueError (a user-facing message), change nothing."""
        unknown = set(changes) - set(GuildSettings.names())
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}.")
        current = await self.store.guild_state.settings(platform, guild)
        updated = dataclasses.replace(current, **{k: v for k, v in changes.items() if v is not None})
        updated.validate()
        if updated != current:
            await self.store.write(self.store.guild_state.put_settings(platform, guild, updated))
        return updated

    async def member_info(self, platform: str, guild: str, member: str) -> MemberInfo:
        """Whether a member opted in, and how much of theirs is learned in this guild."""
        opted_in = await self.is_opted_in(platform, guild, member)
        author_id = await self.store.find_author(platform, guild, member)
        if author_id is None:
            return MemberInfo(opted_in, 0, 0, 0)
        messages, tokens, chains = await self.store.member_totals(platform, guild, author_id)
        return MemberInfo(opted_in, messages, tokens, chains)

    # ---------------------------------------------------------------- learning

    async def learn(
        self, message: Message, *, require_consent: bool = True, deletable: bool = True
    ) -> LearnResult:
        """Queue a message for learning if its author opted in and its channel is enabled.

        deletable: its platform may still delete or edit it (an imported file's lines cannot be), so
        it is kept, sealed, for the edit window. The first message of a chain or of an author writes
        their row at once: while the database cannot be written, it waits its turn as unlearn does.
        """
        debt = Debt(Deferred(Kind.LEARN, message, require_consent=require_consent, deletable=deletable))
        return await self._patience.settle(debt, self._learn(message, require_consent, deletable, debt))

    async def _learn(
        self, message: Message, require_consent: bool, deletable: bool, debt: Debt
    ) -> LearnResult:
        if not message.guild:
            return LearnResult(LearnStatus.NO_GUILD)
        if len(message.text) > self.max_message_chars:
            return LearnResult(LearnStatus.TOO_LONG)
        if require_consent:
            if not await self.is_opted_in(message.platform, message.guild, message.author):
                return LearnResult(LearnStatus.NOT_OPTED_IN)
            if not await self.is_enabled(message.platform, message.guild, message.channel):
                return LearnResult(LearnStatus.CHANNEL_DISABLED)
        pending = await self._patience.run(  # a new chain or author is written now: it waits its turn
            f"learning message {message.id}",
            lambda: self._prepare(message, create=True, keep=deletable, consented=require_consent),
            debt,
        )
        if pending is None:  # no tokens; or a forget removed the member's consent since the check
            gone = require_consent and not await self.is_opted_in(
                message.platform, message.guild, message.author
            )
            return LearnResult(LearnStatus.NOT_OPTED_IN if gone else LearnStatus.EMPTY)
        if not await self.store.enqueue(pending):
            return LearnResult(LearnStatus.ALREADY_PENDING)
        return LearnResult(LearnStatus.QUEUED, len(pending.tokens))

    @contextlib.asynccontextmanager
    async def importing(
        self, chain: ChainKey, *, workers: int = 1, deletable: bool = False
    ) -> AsyncIterator[BatchLearner]:
        """Learn batches of a chain's messages in a few large transactions (an import; no consent check).

        workers=1 prepares them in a worker process while this one writes (0: here), its memory
        taken from the import's budget (none when the budget is too small to share). Everything
        offered is queued when the block ends, and committed when it ends without an error.
        """
        if self.store.bulk_memory_mb < 2 * preparing.WORKER_MB:
            workers = 0
        reserve = preparing.WORKER_MB if workers else 0
        async with self.bulk(reserve), preparing.preparer(self.fingerprints, self.store.key, workers) as prep:
            learner = BatchLearner(self.store, prep, chain, self.max_message_chars, deletable=deletable)
            try:
                yield learner
                await learner.finish()
            finally:
                await learner.abandon()

    async def _prepare(
        self,
        message: Message,
        *,
        create: bool,
        info: ChainInfo | None = None,
        keep: bool = True,
        consented: bool = False,
    ) -> PendingMessage | None:
        """The message ready for the writer, or None (no tokens; no such author, unless create: made,
        and with consented only while the member's consent is recorded)."""
        tokens = tuple(tokenize(message.text))
        if not tokens:
            return None
        if info is None:
            settings = await self.store.guild_state.settings(message.platform, message.guild)
            info = await self.store.chain(message.chain, settings)
        if create and consented:
            author_id = await self.store.consenting_author(message.platform, message.guild, message.author)
        elif create:
            author_id = await self.store.author(message.platform, message.guild, message.author)
        else:
            author_id = await self.store.find_author(message.platform, message.guild, message.author)
        if author_id is None:
            return None
        size = len(message.text.encode("utf-8", "surrogatepass"))
        return self._pending(
            message.platform, message.id, info, author_id, tokens, len(message.text), size, keep
        )

    def _pending(
        self,
        platform: str,
        message_id: str,
        info: ChainInfo,
        author_id: int,
        tokens: tuple[str, ...],
        chars: int,
        size: int,
        keep: bool = True,
    ) -> PendingMessage:
        """A message ready for the writer: its tokens with the fingerprints of the chain's scheme."""
        prepared = preparing.fingerprinted(self.fingerprints, tokens, info.run_length, info.scheme)
        return preparing.pending(platform, message_id, info, author_id, prepared, chars, size, keep)

    async def unlearn(self, message: Message) -> UnlearnStatus:
        """Remove a learned message, given the text it was learned with (see unlearn_id without it).

        While the database cannot be written (another process holds it, an import say, or the disk is
        full) this waits its turn (bot.core.patience); StoreError after that.
        """
        debt = Debt(Deferred(Kind.UNLEARN, message))
        return await self._patience.settle(debt, self._unlearn(message, debt))

    async def _unlearn(self, message: Message, debt: Debt) -> UnlearnStatus:
        return await self._patience.run(
            f"unlearning message {message.id}", lambda: self._unlearn_text(message), debt
        )

    async def _unlearn_text(self, message: Message) -> UnlearnStatus:
        await self.store.flush()
        found = await self.store.message(message.platform, message.id)
        if found is None:
            return UnlearnStatus.NOT_LEARNED
        info, _, _ = found
        pending = await self._prepare(message, create=False, info=info)
        if pending is None:
            return UnlearnStatus.TEXT_MISMATCH
        status = await self.store.unlearn(pending)
        if status is UnlearnStatus.TEXT_MISMATCH:
            log.info("not unlearning message %s: the text given is not the text learned", message.id)
        return status

    async def unlearn_id(self, platform: str, message_id: str) -> UnlearnStatus:
        """Remove a learned message by id alone, from its recent row (NOT_KEPT when there is none); it
        waits its turn as unlearn does."""
        return await self.delete(platform, message_id)

    async def delete(self, platform: str, message_id: str, cached: Message | None = None) -> UnlearnStatus:
        """A deleted message unlearned: from its recent row, else (learned before the edit window) from
        the text the front end still had (cached), if any; it waits its turn as unlearn does."""
        message = cached if cached is not None else by_id(platform, message_id)
        debt = Debt(Deferred(Kind.DELETE, message))
        return await self._patience.settle(debt, self._delete(message, debt))

    async def _delete(self, message: Message, debt: Debt) -> UnlearnStatus:
        status = await self._unlearn_recent(message.platform, message.id, None, debt)
        if status is UnlearnStatus.NOT_KEPT and message.text:
            status = await self._unlearn(message, debt)
        return status

    async def _unlearn_recent(
        self, platform: str, message_id: str, author: Message | None, debt: Debt
    ) -> UnlearnStatus:
        """Unlearn from the recent row; with author given, only a message that member wrote in that guild."""
        return await self._patience.run(
            f"unlearning message {message_id}",
            lambda: self._unlearn_recent_once(platform, message_id, author),
            debt,
        )

    async def _unlearn_recent_once(
        self, platform: str, message_id: str, author: Message | None
    ) -> UnlearnStatus:
        await self.store.flush()
        found = await self.store.recent(platform, message_id)
        if found is None:
            if not await self.store.is_learned(platform, message_id):
                return UnlearnStatus.NOT_LEARNED
            log.debug("message %s was learned before the edit window: its tokens are not kept", message_id)
            return UnlearnStatus.NOT_KEPT
        info, author_id, token_ids, chars, size = found
        if author is not None and author_id != await self.store.find_author(
            author.platform, author.guild, author.author
        ):
            log.info("not unlearning message %s: not learned from that member", message_id)
            return UnlearnStatus.TEXT_MISMATCH
        if token_ids is None:
            log.warning("not unlearning message %s: its recent row does not open with this key", message_id)
            return UnlearnStatus.TEXT_MISMATCH
        tokens = tuple(await self.store.texts(token_ids))
        if not all(tokens):  # a token of a learned message is never deleted; never expected
            log.warning("not unlearning message %s: a token of its recent row is missing", message_id)
            return UnlearnStatus.TEXT_MISMATCH
        pending = self._pending(platform, message_id, info, author_id, tokens, chars, size)
        status = await self.store.unlearn(pending)
        if status is UnlearnStatus.TEXT_MISMATCH:
            log.warning(
                "not unlearning message %s: its recent row does not match its fingerprint", message_id
            )
        return status

    async def edit(self, before: Message | None, after: Message) -> LearnResult:
        """An edited message: unlearn the old version and learn the new one.

        The old version is unlearned from its text when the front end has it cached, else from
        its recent row (only when the editor is the member it was learned from). A message
        learned before the edit window whose old text is unknown keeps its old version.
        """
        debt = Debt(Deferred(Kind.EDIT, after, before))
        return await self._patience.settle(debt, self._edit(before, after, debt))

    async def _edit(self, before: Message | None, after: Message, debt: Debt) -> LearnResult:
        # Made again from the start after a restart, it changes nothing twice: the old version is no
        # longer learned (NOT_LEARNED), and the new one is learned once (its id is deduped).
        status = await self._unlearn(before, debt) if before is not None else UnlearnStatus.NOT_KEPT
        if status in (UnlearnStatus.NOT_KEPT, UnlearnStatus.TEXT_MISMATCH):
            status = await self._unlearn_recent(after.platform, after.id, after, debt)
        if status in (UnlearnStatus.NOT_KEPT, UnlearnStatus.TEXT_MISMATCH):
            log.debug("edit of message %s: the learned version is unknown, kept", after.id)
            return LearnResult(LearnStatus.ALREADY_LEARNED)
        return await self._learn(after, True, True, debt)

    async def forget(self, platform: str, guild: str, member: str) -> ForgetResult:
        """Remove every contribution of a member to this guild and opt them out, and drop the changes of
        theirs kept for later (their sealed text: nothing of theirs is left for them to change)."""
        result = await self.store.forget(platform, guild, member)
        dropped = await self._patience.drop(lambda change: change.holds(platform, guild, member))
        log.info(
            "forgot member in %s guild %s: %d messages, %d chains; dropped %d changes kept for later",
            platform,
            guild,
            result.messages,
            result.chains,
            dropped,
        )
        return result

    async def reset(self, chain: ChainKey) -> int:
        """Delete a channel's chain; returns how many learned messages it held."""
        return await self.store.reset(chain)

    async def is_learned(self, platform: str, message_id: str) -> bool:
        """True when this message id was learned (or is queued to be)."""
        return self.store.is_pending(platform, message_id) or await self.store.is_learned(
            platform, message_id
        )

    # ---------------------------------------------------------------- generation

    async def refusal(
        self, chain: ChainKey, *, start: str | None = None, author: str | None = None
    ) -> GenerateStatus | None:
        """Why generate would say no at once (no chain, no such member, unknown start), or None.

        Front ends ask before a cooldown, so a request that is refused anyway is not told to wait.
        """
        resolved = await self._generation.resolve(chain, start, author)
        return resolved if isinstance(resolved, GenerateStatus) else None

    async def generate(
        self,
        chain: ChainKey,
        *,
        start: str | None = None,
        author: str | None = None,
        rng: random.Random | None = None,
        guard: bool | None = None,
        tries: int | None = None,
    ) -> Generated:
        """Generate one message from a chain, optionally from a start word and one member's part
        (guard: the copy guard, the guild's setting when None; see bot.core.generation)."""
        return await self._generation.generate(
            chain,
            start=start,
            author=author,
            rng=rng or random.Random(),
            guard=guard,
            tries=tries or self.tries,
            budget=self.guard_budget,
        )

    async def generate_many(
        self,
        chain: ChainKey,
        count: int,
        *,
        start: str | None = None,
        author: str | None = None,
        rng: random.Random | None = None,
        guard: bool | None = None,
    ) -> list[Generated]:
        """Up to count messages; stops at the first that fails (the last result then says why)."""
        rng = rng or random.Random()
        results: list[Generated] = []
        for _ in range(count):
            result = await self.generate(chain, start=start, author=author, rng=rng, guard=guard)
            results.append(result)
            if not result.ok:
                break
        return results

    # ---------------------------------------------------------------- the retention report

    async def stats(self, chain: ChainKey, *, fresh: bool = False) -> retention.RetentionReport:
        """The retention report of a chain, cached for REPORT_TTL seconds while the chain is unchanged."""
        await self.settle()
        async with self._reporting:
            info = await self.store.find_chain(chain)
            key = (info.id, self.store.versions.generation(info.id)) if info else None
            cached = self._reports.get(chain)
            if not fresh and cached and cached[0] == key and time.monotonic() - cached[1] < REPORT_TTL:
                return cached[2]
            report = await retention.report(self, chain)
            self._reports[chain] = (key, time.monotonic(), report)
            return report

    # ---------------------------------------------------------------- counts

    async def chains(self) -> list[ChainSummary]:
        """Every chain of the database, with how many messages and tokens it learned."""
        await self.settle()
        return await self.store.all_chains()

    async def has_chain(self, chain: ChainKey) -> bool:
        """True when the chain exists (something was learned there)."""
        return await self.store.find_chain(chain) is not None

    async def author_ids(self, chain: ChainKey, limit: int = 10) -> list[str]:
        """Ids of up to limit authors learned in a chain (to tell a user which exist)."""
        info = await self.store.find_chain(chain)
        return [] if info is None else await self.store.chain_author_ids(info.id, limit)

    async def counts(self, chain: ChainKey) -> dict[str, int]:
        """What a chain has seen (messages, tokens, characters, bytes); zeros when it does not exist."""
        info = await self.store.find_chain(chain)
        if info is None:
            return {"messages_seen": 0, "tokens_seen": 0, "chars_seen": 0, "bytes_seen": 0}
        messages, tokens, chars, size = await self.store.chain_counters(info.id)
        return {"messages_seen": messages, "tokens_seen": tokens, "chars_seen": chars, "bytes_seen": size}

    # ---------------------------------------------------------------- the front ends' own state

    async def get_state(self, key: str) -> str | None:
        """A value a front end saved (a sync token, a backfill cursor...), or None."""
        return await self.store.get_meta(key)

    async def set_state(self, key: str, value: str) -> None:
        """Save a front end's value under key (kept across restarts)."""
        await self.store.set_meta(key, value)
