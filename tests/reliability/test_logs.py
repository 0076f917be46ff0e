"""Logs help debug a complaint, but never carry message text at INFO or any secret."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import Settings
from bot.core.brain import Brain
from bot.core.models import ChainKey, Message

MARKER = "zqxjmarkerword"
SECRETS = {
    "DISCORD_TOKEN": "MTIzNDU2Nzg5MDEyMzQ1Njc4.Gabcde.fake-token-value-123456",
    "MATRIX_PASSWORD": "hunter2-but-longer",
}


async def test_message_text_never_reaches_info_logs(brain: Brain, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await brain.opt_in("t", "g", "u")
    await brain.set_channel("t", "g", "c", True)
    for i in range(5):
        await brain.learn(Message("t", "g", "c", "u", str(i), f"{MARKER} number {i} and more"))
    await brain.flush()
    await brain.unlearn(Message("t", "g", "c", "u", "0", f"{MARKER} number 0 and more"))
    await brain.unlearn(Message("t", "g", "c", "u", "1", "not the text it was learned with"))
    await brain.generate(ChainKey("t", "g", "c"), start=MARKER, guard=False)
    await brain.stats(ChainKey("t", "g", "c"))
    await brain.forget("t", "g", "u")
    assert_no_leak(caplog)


def assert_no_leak(caplog: pytest.LogCaptureFixture) -> None:
    assert caplog.records, "nothing was logged at all"
    leaked = [r for r in caplog.records if r.levelno >= logging.INFO and MARKER in r.getMessage()]
    assert not leaked


def test_imports_never_log_message_text(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    corpus = tmp_path / "c.txt"
    corpus.write_text(f"{MARKER} in a file\n", encoding="utf-8")
    assert (
        main(["--db", str(tmp_path / "cli.db"), "import", str(corpus), "--chain", "c", "--no-progress"]) == 0
    )
    assert_no_leak(caplog)


def test_secrets_never_reach_logs_or_reprs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MARKOV_DB", str(tmp_path / "s.db"))
    settings = Settings.from_env(dotenv=False)
    assert settings.discord_token == SECRETS["DISCORD_TOKEN"]
    assert main(["chains"]) == 0
    shown = repr(settings) + str(settings) + caplog.text
    for value in SECRETS.values():
        assert value not in shown
