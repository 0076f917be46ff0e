"""Starting a bot: one way to open the database and to report what stops a start, in one line."""

from __future__ import annotations

import logging
import sqlite3
import sys

from bot import errors
from bot.config import Settings
from bot.core.brain import Brain
from bot.core.store import SchemaTooNew, StoreError
from bot.core.storeparts import postgres_errors
from bot.core.walkerhost import WalkerDied
from bot.runtime import answer_promptly, settle_heap

log = logging.getLogger(__name__)


def database_errors(settings: Settings) -> tuple[type[BaseException], ...]:
    """What opening or using the selected database raises when it is unusable (said in one line)."""
    return (sqlite3.DatabaseError, OSError, *(postgres_errors() if settings.postgres else ()))


class StartupError(Exception):
    """Why the bot cannot start, as one line for the person running it."""


async def open_brain(settings: Settings) -> Brain:
    """Open the database for a long-running bot, and make what an earlier run kept for it; a storage
    problem raises StartupError."""
    answer_promptly()
    try:
        brain = await Brain.open(settings.database, **settings.store_options, in_background=True)
    except (SchemaTooNew, StoreError) as exc:
        raise StartupError(str(exc)) from None
    except WalkerDied as exc:
        raise StartupError(errors.walker_died(exc)) from None
    except database_errors(settings) as exc:
        raise StartupError(errors.db_unusable(settings.database_label, exc)) from None
    settle_heap()
    brain.catch_up()  # what an earlier run could not write yet (a delete during an import, say)
    return brain


def say(line: str) -> None:
    """Print one line for the person running the bot."""
    print(f"markovbot: {line}", file=sys.stderr)


def quiet_libraries(settings: Settings) -> None:
    """Keep libraries' per-event chatter (matrix-nio logs every event at INFO) out of the log unless debugging."""
    if settings.log_level != "DEBUG":
        logging.getLogger("nio").setLevel(logging.WARNING)
