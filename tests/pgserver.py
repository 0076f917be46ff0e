"""A PostgreSQL server for the tests: MARKOV_TEST_DATABASE_URL's, or a throwaway one started here.

Without MARKOV_TEST_DATABASE_URL, the installed binaries (pg_ctl on PATH, else the newest
/usr/lib/postgresql/*/bin, or MARKOV_TEST_PG_BINDIR) initialise a cluster in a temporary folder
and start it on a free port of 127.0.0.1, with trust authentication for the role postgres.
initdb refuses to run as root, so a root test run starts it as the unprivileged user nobody.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

URL_ENV = "MARKOV_TEST_DATABASE_URL"
BINDIR_ENV = "MARKOV_TEST_PG_BINDIR"
UNPRIVILEGED = "nobody"


def find_bindir() -> Path | None:
    """Where pg_ctl and initdb are, if PostgreSQL is installed."""
    given = os.environ.get(BINDIR_ENV)
    if given:
        return Path(given)
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent

    def major(folder: str) -> int:
        found = re.search(r"/(\d+)/bin$", folder)
        return int(found.group(1)) if found else 0

    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=major, reverse=True)
    return next((Path(f) for f in folders if (Path(f) / "pg_ctl").exists()), None)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThrowawayServer:
    """A PostgreSQL cluster in a temporary folder, for one test session."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="markov-pg-"))
        self.port = free_port()
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            user = pwd.getpwnam(UNPRIVILEGED)
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    @property
    def url(self) -> str:
        """The superuser's URL, to its maintenance database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(
            args, cwd=self.root, check=True, capture_output=True, timeout=120, **self._as
        )  # cwd: a folder the server's user can enter

    def start(self) -> None:
        """initdb, then start and wait until it accepts connections (pg_ctl -w)."""
        data = str(self.root / "data")
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            data,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        log = str(self.root / "server.log")
        self._run(str(self.bindir / "pg_ctl"), "-D", data, "-l", log, "-o", options, "-w", "start")

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        try:
            self._run(
                str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"
            )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
