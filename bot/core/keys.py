"""The fingerprint key: a secret kept outside the database, so the database alone confirms nothing.

Fingerprints are keyed BLAKE2b. The key comes from MARKOV_FINGERPRINT_KEY or, when that is unset,
from a key file beside the database (``<db file name>.key``, hex, mode 0600) created on first
run. The database holds only a check value of the key, so that a wrong key is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
from pathlib import Path

ENV = "MARKOV_FINGERPRINT_KEY"
MIN_BYTES = 16
MAX_BYTES = 64  # BLAKE2b's longest key
NEW_KEY_BYTES = 32
CHECK_META = "key_check"  # the meta row holding check_value(key)
OLD_SALT_META = "salt"  # where databases before the key file kept the key, in the clear


class KeyRefused(RuntimeError):
    """The key is missing, malformed, unsafe or not this database's; the message says what to do."""


def parse(raw: str, source: str) -> bytes:
    """A key from its hex text; source names where it came from, for the message."""
    try:
        key = bytes.fromhex(raw.strip())
    except ValueError:
        raise KeyRefused(f"{source} must be hexadecimal (e.g. from `openssl rand -hex 32`).") from None
    if not MIN_BYTES <= len(key) <= MAX_BYTES:
        raise KeyRefused(
            f"{source} must hold {MIN_BYTES} to {MAX_BYTES} bytes ({2 * MIN_BYTES} to {2 * MAX_BYTES} "
            f"hex digits), got {len(key)}."
        )
    return key


def key_file(db_path: str | os.PathLike[str]) -> Path:
    """Where the key of the database at db_path lives when it is not in the environment."""
    path = Path(db_path)
    return path.with_name(path.name + ".key")


def check_value(key: bytes) -> str:
    """What the database stores to tell whether a key is its own (the key cannot be derived from it)."""
    return hashlib.blake2b(b"", key=key, digest_size=16, person=b"markovbot-kcheck").hexdigest()


def read_file(path: Path) -> bytes | None:
    """The key in a key file, or None when there is no file; refused when others can read it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "r", encoding="ascii", errors="replace") as file:
        mode = os.fstat(file.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyRefused(
                f"the fingerprint key file {path} is open to other users: run `chmod 600 {path}`."
            )
        text = file.read()
    return parse(text, f"the fingerprint key file {path}")


def write_file(path: Path, key: bytes) -> None:
    """Create the key file, mode 0600, complete or not at all, never over an existing one.

    The key is written and synced under a name of this process's own, then linked to its name: a
    crash leaves no empty or partial key file, and a file that appeared meanwhile wins
    (FileExistsError).
    """
    tmp = temporary(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # left by a crashed process of the same id: it was never the key file
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, (key.hex() + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    _fsync_dir(path.parent)


def temporary(path: Path) -> Path:
    """Where this process writes a new key file before linking it into place."""
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")


def _fsync_dir(folder: Path) -> None:
    """Make a new directory entry durable (where the platform allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def from_file(
    db_path: str | os.PathLike[str], *, old_salt: bytes | None, has_check: bool, named: str | None = None
) -> bytes:
    """The key from the file beside the database, creating the file when the database has no key yet.

    A database from before the key file hands over its salt (old_salt): it becomes the file's key.
    named: the database as messages call it (default db_path; a PostgreSQL URL, say).
    """
    path = key_file(db_path)
    key = read_file(path)
    if key is not None:
        return key
    if has_check:
        raise KeyRefused(
            f"the fingerprint key of {named or db_path} is missing: restore {path} (or set {ENV}) "
            "with the key this database was created with."
        )
    with contextlib.suppress(FileExistsError):  # another process opening the database wrote it first
        write_file(path, old_salt if old_salt is not None else secrets.token_bytes(NEW_KEY_BYTES))
    key = read_file(path)  # whichever process wrote it, every one uses what the file holds
    if key is None:
        raise KeyRefused(f"the fingerprint key file {path} vanished while it was being created.")
    return key


def resolve(
    db_path: str | os.PathLike[str],
    given: bytes | None,
    *,
    salt: str | None,
    check: str | None,
    named: str | None = None,
) -> bytes:
    """The database's key: given (from the environment) or its key file; refused if not its own.

    salt and check are the database's meta values: a salt kept there by older versions (the key,
    which the key file takes over), and the check value of its key.
    """
    old_salt = parse(salt, f"the salt kept in {db_path}") if salt is not None else None
    if given is not None:
        key, source = given, ENV
    else:
        key = from_file(db_path, old_salt=old_salt, has_check=check is not None, named=named)
        source = f"the key file {key_file(db_path)}"
    if old_salt is not None and key != old_salt:
        raise KeyRefused(
            f"{db_path} still holds its fingerprint key, and {source} is another one: open it once "
            f"with neither {ENV} nor {key_file(db_path)} to move its key there."
        )
    if check is not None and check != check_value(key):
        raise KeyRefused(
            f"{source} is not the fingerprint key of {named or db_path}: use the key this database was "
            f"created with ({key_file(db_path)} or {ENV}), or point MARKOV_DATABASE_URL at another database."
        )
    return key
