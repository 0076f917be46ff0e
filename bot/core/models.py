"""Plain data passed between the core and the adapters."""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field, fields
from enum import StrEnum

from bot.core.messagekeys import message_key

MIN_ORDER, MAX_ORDER = 1, 3
MIN_RUN, MAX_RUN = 3, 32


@dataclass(frozen=True, slots=True)
class ChainKey:
    """Identifies one chain: a channel (or room) of a guild (or space) on a platform."""

    platform: str
    guild: str
    channel: str


@dataclass(frozen=True, slots=True)
class Message:
    """A chat message as the core sees it: plain ids and text."""

    platform: str
    guild: str
    channel: str
    author: str
    id: str
    text: str

    @property
    def chain(self) -> ChainKey:
        """The chain this message belongs to."""
        return ChainKey(self.platform, self.guild, self.channel)


class LearnStatus(StrEnum):
    """What happened to a message offered for learning."""

    QUEUED = "queued"
    NOT_OPTED_IN = "not_opted_in"
    CHANNEL_DISABLED = "channel_disabled"
    NO_GUILD = "no_guild"
    EMPTY = "empty"
    ALREADY_PENDING = "already_pending"
    ALREADY_LEARNED = "already_learned"
    TOO_LONG = "too_long"


@dataclass(frozen=True, slots=True)
class LearnResult:
    """The outcome of Brain.learn."""

    status: LearnStatus
    tokens: int = 0

    @property
    def queued(self) -> bool:
        """True when the message will be learned at the next flush."""
        return self.status is LearnStatus.QUEUED


class UnlearnStatus(StrEnum):
    """What happened to a message offered for unlearning."""

    UNLEARNED = "unlearned"
    NOT_LEARNED = "not_learned"
    TEXT_MISMATCH = "text_mismatch"
    NOT_KEPT = "not_kept"  # learned, but its tokens are not kept (before the edit window, or it is 0)


class GenerateStatus(StrEnum):
    """Why a generation did or did not produce text."""

    OK = "ok"
    NO_CHAIN = "no_chain"
    NO_MEMBER_DATA = "no_member_data"
    UNKNOWN_START = "unknown_start"
    COPY_GUARD = "copy_guard"


@dataclass(frozen=True, slots=True)
class Generated:
    """One generation attempt: the text, or the reason there is none."""

    status: GenerateStatus
    text: str | None = None
    tokens: tuple[str, ...] = ()
    tries: int = 0

    @property
    def ok(self) -> bool:
        """True when text was produced."""
        return self.status is GenerateStatus.OK


@dataclass(frozen=True, slots=True)
class ForgetResult:
    """How much of a member was removed from a guild."""

    messages: int
    tokens: int
    chains: int


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """What the bot holds about one member in one guild."""

    opted_in: bool
    messages: int
    tokens: int
    chains: int


@dataclass(frozen=True, slots=True)
class FlushResult:
    """What one flush of the writer committed."""

    learned: int = 0
    duplicates: int = 0


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """Per-guild settings; order and run length apply to chains created afterwards."""

    order: int = 2
    reply_on_mention: bool = True
    chime_chance: float = 0.0
    run_length: int = 8
    copy_guard: bool = True

    def validate(self) -> None:
        """Raise ValueError with a message a user can act on when a value is out of range."""
        if not MIN_ORDER <= self.order <= MAX_ORDER:
            raise ValueError(f"order must be between {MIN_ORDER} and {MAX_ORDER} (got {self.order}).")
        if not MIN_RUN <= self.run_length <= MAX_RUN:
            raise ValueError(
                f"run length must be between {MIN_RUN} and {MAX_RUN} tokens (got {self.run_length})."
            )
        if not 0.0 <= self.chime_chance <= 0.5:
            raise ValueError(f"chime chance must be between 0 and 0.5 (got {self.chime_chance}).")

    @classmethod
    def names(cls) -> list[str]:
        """The setting names, in order."""
        return [f.name for f in fields(cls)]


@dataclass(frozen=True, slots=True)
class ChainInfo:
    """A chain's row: its id and the parameters fixed when it was created."""

    id: int
    order: int
    run_length: int
    scheme: int = 2  # how its fingerprints are made (bot.core.fingerprints)


@dataclass(frozen=True, slots=True)
class ChainSummary:
    """A chain and how much it has learned (markovbot chains)."""

    key: ChainKey
    messages: int
    tokens: int
    learned_at: int | None = None  # unix seconds of the last message learned (None: not recorded)


# Not frozen: a frozen class's __init__ took 1.9 µs a message (0.3 here), 5% of an import's main process.
@dataclass(slots=True)
class PendingMessage:
    """A message tokenized and fingerprinted, waiting in the writer's queue (not changed once made)."""

    platform: str
    message_id: str
    chain: ChainInfo
    author_id: int
    tokens: tuple[str, ...]
    fingerprint: int  # of the exact tokens (unlearning checks it)
    normal: int | None  # of the normalised tokens, under fingerprint scheme 2
    windows: tuple[int, ...]
    chars: int
    bytes: int
    keep: bool = True  # kept, sealed, for the edit window: its platform may still delete or edit it
    key: int = field(init=False)  # what its rows are keyed by (bot.core.messagekeys), hashed once
    hashed: InitVar[int | None] = None  # the key, when it was hashed already (kept in the learning log)

    def __post_init__(self, hashed: int | None) -> None:
        self.key = message_key(self.platform, self.message_id) if hashed is None else hashed
