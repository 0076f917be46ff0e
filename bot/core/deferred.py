"""A change a member asked for that the database could not take yet, kept until it is done.

A delete, an edit or a new member's first message that arrives while another process holds the
database (an import, say) waits its turn (bot.core.brain). So that a restart meanwhile does not
lose it (a deleted message left learned), what it was is kept, sealed, in the learning log
(bot.core.learnlog) from its first refusal until it is done, and the next start does it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from bot.core.models import Message


class Kind(StrEnum):
    """Which Brain call a deferred change is."""

    LEARN = "learn"
    UNLEARN = "unlearn"  # by the text it was learned with
    DELETE = "delete"  # by id; message holds only its platform and id, or the text the front end had
    EDIT = "edit"  # before (or None) unlearned, message learned


@dataclass(frozen=True)
class Deferred:
    """A Brain call to make again: its kind and its arguments."""

    kind: Kind
    message: Message
    before: Message | None = None
    require_consent: bool = True
    deletable: bool = True

    def holds(self, platform: str, guild: str, author: str) -> bool:
        """Whether the change carries a message of this member in this guild."""
        return any(
            m is not None and (m.platform, m.guild, m.author) == (platform, guild, author)
            for m in (self.message, self.before)
        )


def _fields(message: Message | None) -> list[str] | None:
    if message is None:
        return None
    return [message.platform, message.guild, message.channel, message.author, message.id, message.text]


def _message(fields: list[str] | None) -> Message | None:
    return None if fields is None else Message(*fields)


def encode(change: Deferred) -> bytes:
    """The change as the bytes the log seals: a JSON array."""
    return json.dumps(
        [
            str(change.kind),
            _fields(change.message),
            _fields(change.before),
            change.require_consent,
            change.deletable,
        ],
        ensure_ascii=False,
    ).encode("utf-8", "surrogatepass")


def decode(data: bytes) -> Deferred:
    """The change encode() made."""
    kind, message, before, require_consent, deletable = json.loads(data.decode("utf-8", "surrogatepass"))
    found = _message(message)
    assert found is not None, "a deferred change without its message"
    return Deferred(Kind(kind), found, _message(before), bool(require_consent), bool(deletable))


def by_id(platform: str, message_id: str) -> Message:
    """The message a DELETE change holds when the front end had no text: its platform and id."""
    return Message(platform, "", "", "", message_id, "")
