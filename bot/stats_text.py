"""The retention report as text (console, CLI, Matrix) with its card."""

from __future__ import annotations

import asyncio
import logging

from bot.core import retention
from bot.core.brain import Brain
from bot.core.chart import render_card
from bot.core.models import ChainKey
from bot.core.retention import RetentionReport, human_bytes
from bot.textcommands import Reply

log = logging.getLogger(__name__)


def figures(r: RetentionReport) -> list[tuple[str, str]]:
    """The report's figures as (label, value) pairs, in display order."""
    return [
        ("seen", f"{r.messages_seen:,} messages · {r.tokens_seen:,} tokens · {r.chars_seen:,} characters"),
        ("kept", f"{r.vocabulary:,} words · {r.states:,} states · {r.transitions:,} transitions"),
        (
            "bytes kept",
            f"{human_bytes(r.bytes_kept)} (transitions {human_bytes(r.bytes_transitions)}, "
            f"fingerprints and recent token ids {human_bytes(r.bytes_fingerprints)}) for {human_bytes(r.bytes_seen)} seen "
            f"= {r.kept_ratio:.2f}×",
        ),
        ("forced states", f"{r.forced_share:.1%} (order {r.order})"),
        ("entropy", f"{r.entropy_bits:.2f} bits per token"),
        ("copy rate", f"{r.copy_rate:.1%} of {r.samples} samples (guard off, seed {r.seed})"),
        ("long-run rate", f"{r.long_run_rate:.1%} contain ≥{r.run_length} tokens from one message"),
        (
            "extraction",
            f"{r.extraction_rate:.1%} ({r.extracted:,} messages) with {r.extraction_budget:,} candidates",
        ),
    ]


def as_text(r: RetentionReport) -> str:
    """Summary first, then one figure per line."""
    lines = [retention.summary(r), ""]
    lines += [f"{label}: {value}" for label, value in figures(r)]
    lines.append(f"(bytes measured as {retention.BYTES_METHOD})")
    return "\n".join(lines)


async def stats_reply(brain: Brain, chain: ChainKey) -> Reply:
    """The /markov stats reply for text adapters: the report and its card."""
    report = await brain.stats(chain)
    image = (
        await asyncio.to_thread(render_card, report, f"#{chain.channel}") if report.messages_seen else None
    )
    return Reply(as_text(report), image=image)
