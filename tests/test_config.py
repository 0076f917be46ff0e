"""Settings: MARKOV_EDIT_WINDOW_DAYS reaches the store, and a bad value gets one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, Settings
from bot.core.brain import Brain


def test_the_edit_window_defaults_to_7_days_and_reaches_the_store() -> None:
    assert Settings.from_env({}, dotenv=False).store_options["edit_window_days"] == 7
    zero = Settings.from_env({"MARKOV_EDIT_WINDOW_DAYS": "0"}, dotenv=False)
    assert zero.store_options["edit_window_days"] == 0


@pytest.mark.parametrize("raw", ["-1", "a week", "3651"])
def test_a_bad_edit_window_is_refused_in_one_line(raw: str) -> None:
    with pytest.raises(ConfigError, match="MARKOV_EDIT_WINDOW_DAYS must be") as caught:
        Settings.from_env({"MARKOV_EDIT_WINDOW_DAYS": raw}, dotenv=False)
    assert "\n" not in str(caught.value)


async def test_a_brain_opened_with_the_settings_keeps_recent_messages_or_not(tmp_path: Path) -> None:
    for raw, keeps in (("7", True), ("0", False)):
        settings = Settings.from_env({"MARKOV_EDIT_WINDOW_DAYS": raw}, dotenv=False)
        brain = await Brain.open(tmp_path / f"w{raw}.db", **{**settings.store_options, "walker": "thread"})
        try:
            assert brain.keeps_recent is keeps
        finally:
            await brain.close()
