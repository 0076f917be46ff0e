"""The named SQL statements (queries.sql) and the process-wide SQLite set-up."""

from __future__ import annotations

import _sqlite3
import ctypes
import functools
import logging
import re
from importlib import resources

log = logging.getLogger(__name__)

SQLITE_CONFIG_MEMSTATUS = 9  # sqlite3_config() option (sqlite3.h)


def load_queries(package: str = "bot.core") -> dict[str, str]:
    """The statements of a package's queries.sql (SQLite's: bot.core), by the name each is given there."""
    text = resources.files(package).joinpath("queries.sql").read_text("utf-8")
    queries: dict[str, str] = {}
    for block in re.split(r"^-- name: ", text, flags=re.MULTILINE)[1:]:
        name, _, body = block.partition("\n")
        queries[name.strip()] = body.strip()
    return queries


Q = load_queries()


@functools.cache
def tune_sqlite() -> bool:
    """Turn off SQLite's memory statistics for this process, once, if no connection is open yet.

    With them on, every allocation of every connection takes one process-wide mutex: the
    writer, the reader and the walker (and the report's two scans) then queue on it. Measured
    at 1,000,000 messages, the report's two scans took 10.7 s side by side instead of 4.1 s.
    The setting can only change while SQLite is shut down, which is safe only when it holds no
    memory at all, i.e. no connection exists; otherwise nothing is changed. True when applied.
    """
    try:
        lib = ctypes.CDLL(_sqlite3.__file__)  # its symbols include the SQLite it is linked with
        memory_used = lib.sqlite3_memory_used
        memory_used.restype = ctypes.c_int64
        if memory_used() != 0:
            return False
        lib.sqlite3_shutdown()
        applied: bool = lib.sqlite3_config(SQLITE_CONFIG_MEMSTATUS, ctypes.c_int(0)) == 0
        lib.sqlite3_initialize()
    except (OSError, AttributeError):
        return False
    log.debug("SQLite memory statistics %s", "off" if applied else "left on")
    return applied
