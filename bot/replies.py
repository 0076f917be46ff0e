"""Plain-language replies shared by every adapter (Discord, Matrix, console, CLI)."""

from __future__ import annotations

import logging

from bot.core.models import ForgetResult, Generated, GenerateStatus, LearnStatus, MemberInfo

log = logging.getLogger(__name__)


def generated(result: Generated, *, start: str | None = None, member: str | None = None) -> str:
    """The text to post for a generation: the message itself, or why there is none."""
    if result.ok and result.text:
        return result.text
    if result.status is GenerateStatus.NO_CHAIN:
        return "I haven't learned anything in this channel yet."
    if result.status is GenerateStatus.NO_MEMBER_DATA:
        who = member or "that member"
        return f"I haven't learned anything from {who} in this channel."
    if result.status is GenerateStatus.UNKNOWN_START:
        return f"I don't know the word {start!r} in this channel: try another start word, or none."
    return (
        f"Every one of my {result.tries} tries repeated a learned message (or a long run of one), "
        "so I'm not posting any: this channel's chain mostly repeats its source."
    )


def member(info: MemberInfo) -> str:
    """What /markov me answers."""
    state = "You are opted in here." if info.opted_in else "You are not opted in here."
    if not info.messages:
        return f"{state} I have learned nothing from you in this server."
    return (
        f"{state} I have learned {info.messages:,} of your messages ({info.tokens:,} tokens) "
        f"in {info.chains} channel(s). I keep only word-transition counts, never the messages: "
        "`/markov forget` removes all of it."
    )


def forgot(result: ForgetResult) -> str:
    """What /markov forget answers once done."""
    if not result.messages:
        return "Done: there was nothing of yours to forget in this server, and you are opted out."
    return (
        f"Done: forgot {result.messages:,} of your messages ({result.tokens:,} tokens) from "
        f"{result.chains} channel(s). The chains are now exactly as if you had never opted in, "
        "and you are opted out."
    )


OPTED_IN = (
    "You're opted in: from now on I learn from your messages in channels where learning is enabled. "
    "I store only word-transition counts, never your messages. `/markov optout` stops it, "
    "`/markov forget` removes everything learned from you."
)
ALREADY_OPTED_IN = "You were already opted in."
OPTED_OUT = (
    "You're opted out: I won't learn from you any more. What I already learned stays until you run "
    "`/markov forget`."
)
NOT_OPTED_IN = "You weren't opted in, so there was nothing to stop."


def unknown_console_command(word: str) -> str:
    """A console line starting with / that is no command: answered, never learned."""
    shown = word if len(word) <= 40 else word[:40] + "…"
    return f"Unknown command {shown!r} (not learned). Commands start with /markov (try /markov help); /quit leaves."


def not_learned(status: LearnStatus, max_chars: int) -> str:
    """Why a console line was not learned."""
    if status is LearnStatus.TOO_LONG:
        return f"(not learned: longer than {max_chars:,} characters)"
    return f"(not learned: {status.value.replace('_', ' ')})"
