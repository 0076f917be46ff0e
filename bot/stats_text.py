"""The retention report as text (console, CLI, Matrix) with its card."""

from __future__ import annotations

import asyncio
import logging

from bot.core import retention
from bot.core.brain import Brain
from bot.core.chart import alt_text, render_card
from bot.core.models import ChainKey
from bot.core.retention import RetentionReport, human_bytes
from bot.textcommands import Reply

log = logging.getLogger(__name__)


def figures(r: RetentionReport) -> list[tuple[str, str]]:
    """The report's figures as (label, value) pairs, in display order: what was said once first."""
    words = "word" if r.order == 1 else f"{r.order} words"
    return [
        (
            "said once, given back",
            f"{r.discoverable_eidetic.percent()} of {r.eidetic_messages:,} messages said once: the most "
            f"likely walk from their first {words} repeats the rest",
        ),
        (
            "outputs copying a message said once",
            f"{r.copies_eidetic.percent()}; a run of {r.run_length} words from one: "
            f"{r.long_runs_eidetic.percent()} (guard off, seed {r.seed})",
        ),
        (
            "found by an attack",
            f"{r.extracted_eidetic.value:.1%} of the messages said once ({r.extracted_eidetic.hits:,}) "
            f"among the {r.extraction_budget:,} most likely messages; with the database and its key, a "
            f"search the fingerprints guide finds {r.extracted_with_key.value:.1%} "
            f"({r.extracted_with_key.hits:,})",
        ),
        (
            "all messages",
            f"{r.distinct_messages:,} distinct ({r.common_messages:,} common: said ≥{r.common_times} times "
            f"or by ≥{r.common_authors} people); given back {r.discoverable.percent()}, common ones "
            f"{r.discoverable_common.percent()}; outputs copying any {r.copies.percent()}",
        ),
        ("seen", f"{r.messages_seen:,} messages · {r.tokens_seen:,} tokens · {r.chars_seen:,} characters"),
        ("kept", f"{r.vocabulary:,} words · {r.states:,} states · {r.transitions:,} transitions"),
        (
            "bytes kept",
            f"{human_bytes(r.bytes_kept)} (counts per author {human_bytes(r.bytes_transitions)}, "
            f"keyed fingerprints {human_bytes(r.bytes_fingerprints)}, recent messages {human_bytes(r.bytes_recent)}) for {human_bytes(r.bytes_seen)} seen "
            f"= {r.kept_ratio:.2f}×",
        ),
        ("forced states", f"{r.forced_share:.1%} (order {r.order})"),
        ("entropy", f"{r.entropy_bits:.2f} bits per token"),
    ]


def as_text(r: RetentionReport) -> str:
    """Summary first, then one figure per line."""
    lines = [retention.summary(r), ""]
    lines += [f"{label}: {value}" for label, value in figures(r)]
    lines.append(f"(bytes measured as {retention.BYTES_METHOD})")
    return "\n".join(lines)


async def stats_reply(brain: Brain, chain: ChainKey, name: str | None = None) -> Reply:
    """The /markov stats reply for text adapters: the report and its card, titled with the channel's name."""
    report = await brain.stats(chain)
    title = name or f"#{chain.channel}"
    if not report.messages_seen:
        return Reply(as_text(report))
    image = await asyncio.to_thread(render_card, report, title)
    return Reply(as_text(report), image=image, image_alt=alt_text(report, title))
