"""A real Synapse homeserver on 127.0.0.1 for integration tests: SQLite, no federation, no TLS."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SERVER_NAME = "localhost"
SECRET = "markovbot-test-shared-secret"
STARTUP_TIMEOUT = 90.0
FAST = {"per_second": 1000, "burst_count": 1000}

LOG_CONFIG = """version: 1
formatters:
  plain:
    format: '%(asctime)s %(levelname)s %(name)s: %(message)s'
handlers:
  file:
    class: logging.FileHandler
    filename: {path}
    formatter: plain
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SynapseServer:
    """Starts Synapse in a folder, registers users with the shared secret, stops it by its pid."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.server_name = SERVER_NAME
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "homeserver.log"

    def write_config(self) -> Path:
        """Write homeserver.yaml (JSON is valid YAML) and the signing key."""
        f = self.folder
        f.mkdir(parents=True, exist_ok=True)
        (f / "log.config").write_text(LOG_CONFIG.format(path=self.log_path), "utf-8")
        config: dict[str, Any] = {
            "server_name": SERVER_NAME,
            "pid_file": str(f / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {"name": "sqlite3", "args": {"database": str(f / "homeserver.db")}},
            "log_config": str(f / "log.config"),
            "media_store_path": str(f / "media"),
            "signing_key_path": str(f / "signing.key"),
            "registration_shared_secret": SECRET,
            "macaroon_secret_key": "markovbot-test-macaroon",
            "form_secret": "markovbot-test-form",
            "report_stats": False,
            "enable_metrics": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "url_preview_enabled": False,
            "federation_domain_whitelist": [],
            "rc_message": FAST,
            "rc_registration": FAST,
            "rc_login": {"address": FAST, "account": FAST, "failed_attempts": FAST},
            "rc_joins": {"local": FAST, "remote": FAST},
            "rc_joins_per_room": FAST,
            "rc_invites": {"per_room": FAST, "per_user": FAST, "per_issuer": FAST},
            "rc_admin_redaction": FAST,
            "rc_3pid_validation": FAST,
            "rc_presence": {"per_user": FAST},
            "rc_delayed_event_mgmt": FAST,
            "rc_room_creation": FAST,
            "rc_reports": FAST,
            "rc_media_create": FAST,
            "max_upload_size": "10M",
        }
        path = f / "homeserver.yaml"
        path.write_text(json.dumps(config, indent=2), "utf-8")
        subprocess.run(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(path), "--generate-keys"],
            check=True,
            capture_output=True,
            cwd=f,
        )
        return path

    def start(self) -> None:
        """Start the server and wait until the client API answers."""
        config = self.write_config()
        env = {**os.environ, "SYNAPSE_SKIP_RUNTIME_WARNINGS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(config)],
            cwd=self.folder,
            stdout=subprocess.DEVNULL,
            stderr=open(self.folder / "stderr.log", "wb"),  # noqa: SIM115 - closed with the process
            env=env,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"synapse exited with {self.process.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/_matrix/client/versions", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"synapse did not answer within {STARTUP_TIMEOUT:.0f} s:\n{self.tail()}")

    def tail(self) -> str:
        """The end of the server's logs, for error messages."""
        parts = []
        for name in ("stderr.log", "homeserver.log"):
            path = self.folder / name
            if path.exists():
                parts.append(path.read_text("utf-8", "replace")[-3000:])
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop the server by its pid: SIGTERM, then SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.base_url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def register(self, username: str, password: str, *, admin: bool = False) -> tuple[str, str]:
        """Register a user with the shared-secret admin API; returns (user id, access token)."""
        nonce = self._request("GET", "/_synapse/admin/v1/register")["nonce"]
        mac = hmac.new(SECRET.encode(), digestmod=hashlib.sha1)
        mac.update(
            b"\x00".join(p.encode() for p in (nonce, username, password, "admin" if admin else "notadmin"))
        )
        digest = mac.hexdigest()
        reply = self._request(
            "POST",
            "/_synapse/admin/v1/register",
            {"nonce": nonce, "username": username, "password": password, "admin": admin, "mac": digest},
        )
        return str(reply["user_id"]), str(reply["access_token"])
