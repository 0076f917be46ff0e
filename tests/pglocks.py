"""What the PostgreSQL tests ask the server's lock table: who waits on an advisory lock of theirs."""

from __future__ import annotations

# pg_locks lists every database's locks, and tests run side by side (pytest-xdist), each in a database
# of its own with the same lock keys: only the asking connection's database counts.
_WAITING = (
    "FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = $1 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
WAITERS = f"SELECT count(*) {_WAITING}"  # how many wait on advisory lock $1
WAITER = f"SELECT pid {_WAITING}"  # the backend of one that waits on it
