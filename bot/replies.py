"""Every reply's wording, for every front end, and `render`: the one step each sent text goes through.

Wording names commands as `/markov ...`; `render` gives the platform's prefix (`!markov` on
Matrix), defuses anything that could ping or draw a pill (@everyone, @room, <@id>, @user:server),
and caps the length for the platform. Text a member typed is quoted with `quote` (short, one line).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from bot.cooldowns import MAX_COUNT
from bot.core.models import ForgetResult, Generated, GenerateStatus, GuildSettings, LearnStatus, MemberInfo
from bot.core.schema import DatabaseBusy, DiskFull, StoreError
from bot.core.tokens import neutralise

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Platform:
    """How a front end shows a reply: its command prefix and longest message."""

    name: str
    prefix: str
    max_chars: int


DISCORD = Platform("discord", "/markov", 2000)
MATRIX = Platform("matrix", "!markov", 8000)  # well under a Matrix event's 64 KiB
CONSOLE = Platform("local", "/markov", 8000)

QUOTE_CHARS = 40  # longest piece of a member's input quoted back

_COMMAND = re.compile(r"(?<![\w/.:])/markov\b")
_MATRIX_ID = re.compile(r"@(?=[a-z0-9._=/+-]+:[a-z0-9.-]+)", re.IGNORECASE)
_CHANNEL_LINK = re.compile(r"(<#\d{1,20}>)")  # a Discord channel link pings nobody: it stays a link
_SPACES = re.compile(r"\s+")


def render(text: str, platform: Platform) -> str:
    """The text as sent on a platform: its prefix, nothing that pings, at most max_chars long."""
    if platform.prefix != "/markov":
        text = _COMMAND.sub(platform.prefix, text)
    if platform is DISCORD:
        pieces = _CHANNEL_LINK.split(text)  # links at odd positions
        text = "".join(piece if i % 2 else _defuse(piece) for i, piece in enumerate(pieces))
    else:
        text = _defuse(text)
    if len(text) > platform.max_chars:
        text = text[: platform.max_chars - 1] + "…"
    return text


def _defuse(text: str) -> str:
    """No @everyone/@here/@room or <@id> that pings, no @user:server a Matrix client draws as a pill."""
    return _MATRIX_ID.sub("@\u200b", neutralise(text))


def quote(text: str | None) -> str:
    """A member's input quoted back: one line, at most QUOTE_CHARS characters."""
    flat = _SPACES.sub(" ", text or "").strip()
    if len(flat) > QUOTE_CHARS:
        flat = flat[: QUOTE_CHARS - 1] + "…"
    return f"'{flat}'"


# ---------------------------------------------------------------- generate


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
        return f"I don't know the word {quote(start)} in this channel: try another start word, or none."
    return (
        f"Every one of my {result.tries} tries repeated a learned message (or a long run of one), "
        "so I'm not posting any: this channel's chain mostly repeats its source."
    )


#: What is kept of a member's messages: exactly what the tables hold, no more, no less.
STORED = (
    "I don't keep the text of your messages: I keep how often each word follows the words "
    "before it (counted per member), the id and length of each message I learned, "
    "secret-keyed fingerprints of each message and of its runs of words, used only to refuse "
    "to post a copy of them, and, for a few days after I learn a message here, its words as "
    "encrypted numbers, so that deleting or editing it is honoured."
)


def slow_down(command: str, seconds: int, cooldown: float) -> str:
    """A member asked again within the cooldown."""
    return (
        f"Slow down: you can {command} again in {seconds} s "
        f"(each member may use generate and stats once every {cooldown:g} s)."
    )


COUNT_RANGE = f"count must be a whole number from 1 to {MAX_COUNT}."


def not_opted_in(member: str) -> str:
    """/markov generate member: for a member who did not opt in."""
    return f"{member} hasn't opted in, so I won't imitate them. Members opt in with `/markov optin`."


# ---------------------------------------------------------------- whose channel

SERVER_ONLY = "This command only works in a server."
OTHER_SERVER = "That channel is in another server: chains never leave their server."
UNKNOWN_READER = "I can't tell which channels you can read, so I won't use another channel's chain."
CANNOT_READ = "You can't read that channel's history, so I won't use its chain for you."
AGE_RESTRICTED = "That channel is age-restricted: its chain is only posted in age-restricted channels."


def only_you(where: str) -> str:
    """Why another channel's text or figures are shown only to the member who asked."""
    return (
        f"Shown only to you because not everyone who can see this channel can read {where}: "
        "another channel's text and figures are posted publicly only where everyone can read that channel."
    )


# ---------------------------------------------------------------- consent


def member(info: MemberInfo) -> str:
    """What /markov me answers."""
    state = "You are opted in here." if info.opted_in else "You are not opted in here."
    if not info.messages:
        return f"{state} I have learned nothing from you in this server."
    return (
        f"{state} I have learned {info.messages:,} of your messages ({info.tokens:,} tokens) "
        f"in {info.chains} channel(s). {STORED} `/markov forget` removes all of it."
    )


def forget_prompt(messages: int, *, buttons: bool) -> str:
    """What /markov forget asks first (with buttons on Discord, else a confirm command)."""
    text = (
        f"This removes all {messages:,} of your learned messages in this server from every chain, "
        "exactly as if you had never opted in, and opts you out."
    )
    return text + (" Go ahead?" if buttons else " To go ahead, send `/markov forget confirm`.")


def forgot(result: ForgetResult) -> str:
    """What /markov forget answers once done."""
    if not result.messages:
        return "Done: there was nothing of yours to forget in this server, and you are opted out."
    return (
        f"Done: forgot {result.messages:,} of your messages ({result.tokens:,} tokens) from "
        f"{result.chains} channel(s). The chains are now exactly as if you had never opted in, "
        "and you are opted out."
    )


FORGET_CANCELLED = "Cancelled: nothing was forgotten."

OPTED_IN = (
    "You're opted in: from now on I learn from your messages in channels where learning is enabled. "
    f"{STORED} `/markov optout` stops it, `/markov forget` removes all of it."
)
ALREADY_OPTED_IN = "You were already opted in."
OPTED_OUT = (
    "You're opted out: I won't learn from you any more. What I already learned stays until you run "
    "`/markov forget`."
)
NOT_OPTED_IN = "You weren't opted in, so there was nothing to stop."


# ---------------------------------------------------------------- moderators

MANAGER_ONLY = "Only members with the Manage Server permission can use this command."
MODERATOR_ONLY = "Only moderators can use this command."


def channel_learning(where: str, *, enable: bool, changed: bool, can_reset: bool) -> str:
    """What /markov channel enable|disable answers."""
    state = "enabled" if enable else "disabled"
    if not changed:
        return f"Learning was already {state} in {where}."
    if enable:
        return (
            f"Learning is now enabled in {where}. Only members who ran `/markov optin` are learned; "
            "threads learn into their channel."
        )
    reset = " (`/markov reset` deletes it)" if can_reset else ""
    return f"Learning is now disabled in {where}. What was already learned stays{reset}."


I_CANNOT_READ_YET = " Note: I can't read that channel yet: give me View Channel and Read Message History."
CHANNEL_USAGE = "Usage: `/markov channel enable` or `/markov channel disable`."
SETTINGS_SAVED = "Saved."


def not_changed(reason: str) -> str:
    """A setting was refused."""
    return f"Not changed: {reason}"


def describe_settings(s: GuildSettings) -> str:
    """A settings listing a person can read."""
    return (
        f"order (for new chains): {s.order}\n"
        f"reply_on_mention: {'on' if s.reply_on_mention else 'off'}\n"
        f"chime_chance: {s.chime_chance:g}\n"
        f"run_length (copy guard K, for new chains): {s.run_length}\n"
        f"copy_guard: {'on' if s.copy_guard else 'off'}"
    )


def settings_usage(names: tuple[str, ...] | list[str]) -> str:
    """How to change a setting with a text command."""
    return f"Usage: `/markov settings NAME VALUE`, NAME one of {', '.join(names)}."


def unknown_setting(name: str, names: tuple[str, ...] | list[str]) -> str:
    """A setting name nobody knows."""
    return f"unknown setting {quote(name)}; settings are {', '.join(names)}."


# ---------------------------------------------------------------- backfill (/markov train) and reset


def train_counts(read: int, learned: int, known: int, not_opted_in: int, skipped: int) -> str:
    """How far a backfill got, in one line."""
    return (
        f"read {read:,} messages: learned {learned:,}, already learned {known:,}, "
        f"not opted in {not_opted_in:,}, skipped {skipped:,} (bots, webhooks, system or empty)"
    )


def train_not_enabled(where: str) -> str:
    """A backfill of a channel where learning is off."""
    return f"Learning isn't enabled in {where}: run `/markov channel enable` there first."


def train_cannot_read(where: str) -> str:
    """Why a backfill cannot read a channel."""
    return f"I can't read the history of {where}: give me View Channel and Read Message History there."


def train_running(where: str) -> str:
    """A second backfill of the same channel."""
    return f"I'm already reading {where}; wait for it to finish or cancel it."


def train_started(where: str, *, resuming: bool) -> str:
    """A backfill begins."""
    start = "going on from where the last run stopped" if resuming else "from the newest message"
    return f"Reading {where}, {start}…"


def train_progress(where: str, counts: str) -> str:
    """A backfill's progress."""
    return f"Reading {where}… {counts}."


def train_failed(failure: str, counts: str) -> str:
    """A backfill Discord stopped."""
    return f"{failure} So far: {counts}."


def train_cancelled(counts: str) -> str:
    """A backfill the moderator cancelled."""
    return f"Cancelled: {counts}. `/markov train` goes on from there."


def train_done(where: str, counts: str) -> str:
    """A backfill that reached the start of the channel."""
    return (
        f"Done: {counts}. That was the whole history of {where}; new messages are learned as they "
        "come (`from_newest:True` reads it all again, skipping what was learned)."
    )


def train_stopped(limit: int, counts: str) -> str:
    """A backfill that read its limit."""
    return f"Stopped after {limit:,} messages: {counts}. `/markov train` again reads older messages."


def reset_prompt(who: str, where: str, held: int) -> str:
    """/markov reset asks first, in public."""
    return (
        f"{who} asked to delete the chain of {where} ({held:,} learned messages). "
        "This cannot be undone. Only they can confirm."
    )


def reset_working(where: str) -> str:
    """/markov reset confirmed."""
    return f"Resetting the chain of {where}…"


def reset_cancelled(where: str) -> str:
    """/markov reset cancelled."""
    return f"Cancelled: the chain of {where} was not touched."


def reset_done(where: str, removed: int) -> str:
    """/markov reset done."""
    return (
        f"Deleted the chain of {where}: {removed:,} learned messages removed. "
        "Learning goes on there if it is enabled; `/markov train` relearns the history."
    )


# ---------------------------------------------------------------- text commands

HELP = f"""Commands:
  /markov generate [start words] [count:N]   new text in this channel's style (N from 1 to {MAX_COUNT})
  /markov stats                              how little of the source this channel's chain keeps
  /markov optin | optout                      let me learn from you here, or stop
  /markov me                                  what I hold about you here
  /markov forget [confirm]                    remove everything learned from you here
  /markov channel enable|disable              (moderators) learn in this channel, or stop
  /markov settings [name value]               (moderators) show or change a setting
  /markov help                                this text"""


def unknown_command(command: str) -> str:
    """A text command nobody knows."""
    return f"Unknown command {quote(command)}. Try `/markov help`."


ENCRYPTED_ROOM = (
    "This room is end-to-end encrypted, and markovbot doesn't support encrypted rooms yet: "
    "I can't read messages here, so I won't learn or answer in this room."
)


# ---------------------------------------------------------------- buttons and errors

NOT_YOURS = "Only the member who ran this command can answer it."
WORKING = "Working on it…"
CANCELLED = "Cancelled: nothing was changed."
TIMED_OUT = "Timed out: nothing was changed."
CANCELLING = "Cancelling…"
CHANNEL_HELP = "I need View Channel, Send Messages, Read Message History, Embed Links and Attach Files there."
UNEXPECTED = "Something went wrong on my side; it was logged. Please try again later."
DATABASE_BUSY = (
    "My database is busy (another process is writing to it, an import say), so nothing was changed. "
    "Please try again in a few minutes."
)
DISK_FULL = (
    "My disk is full, so nothing was changed; it was logged for the bot's admin. Please try again later."
)
NOT_SAVED = "My database refused the change, so nothing was changed; it was logged. Please try again later."


def not_saved(error: StoreError) -> str:
    """A command whose change the database refused (it is one transaction: nothing changed)."""
    if isinstance(error, DatabaseBusy):
        return DATABASE_BUSY
    return DISK_FULL if isinstance(error, DiskFull) else NOT_SAVED


NEED_MANAGE_SERVER = "You need the Manage Server permission for this command."
CANNOT_USE_HERE = "You can't use this command here."


def missing_permission(where: str, discord_said: str) -> str:
    """A permission Discord refused."""
    return f"I'm missing a permission {where} (Discord said: {discord_said}). {CHANNEL_HELP}"


def bad_option(error: object) -> str:
    """An option Discord's converter could not use."""
    return f"I couldn't use the option you gave: {error}"


def unknown_console_command(word: str) -> str:
    """A console line starting with / that is no command: answered, never learned."""
    return f"Unknown command {quote(word)} (not learned). Commands start with /markov (try /markov help); /quit leaves."


def not_learned(status: LearnStatus, max_chars: int) -> str:
    """Why a console line was not learned."""
    if status is LearnStatus.TOO_LONG:
        return f"(not learned: longer than {max_chars:,} characters)"
    return f"(not learned: {status.value.replace('_', ' ')})"
