"""Starting a bot: one way to open the database and to report what stops a start, in one line."""

from __future__ import annotations

import logging
import sqlite3
import sys

from bot.config import Settings
from bot.core import engines
from bot.core.brain import Brain
from bot.core.store import SchemaTooNew, StoreError
from bot.runtime import settle_heap

log = logging.getLogger(__name__)


class StartupError(Exception):
    """Why the bot cannot start, as one line for the person running it."""


async def open_brain(settings: Settings) -> Brain:
    """Open the database for a long-running bot; a storage problem raises StartupError."""
    if settings.postgres is not None:
        raise StartupError(engines.not_available_yet(settings.postgres))
    try:
        brain = await Brain.open(settings.db_path, **settings.store_options)
    except (SchemaTooNew, StoreError) as exc:
        raise StartupError(str(exc)) from None
    except (sqlite3.DatabaseError, OSError) as exc:
        raise StartupError(f"cannot use the database {settings.db_path}: {exc}") from None
    settle_heap()
    return brain


def say(line: str) -> None:
    """Print one line for the person running the bot."""
    print(f"markovbot: {line}", file=sys.stderr)


def quiet_libraries(settings: Settings) -> None:
    """Keep libraries' per-event chatter (matrix-nio logs every event at INFO) out of the log unless debugging."""
    if settings.log_level != "DEBUG":
        logging.getLogger("nio").setLevel(logging.WARNING)
