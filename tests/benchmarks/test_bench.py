"""The benchmark's harness: each figure in a fresh process, which answers or is named when it dies."""

from __future__ import annotations

import os
from typing import Any

import pytest

from benchmarks.bench import in_process


def _answers(x: int) -> dict[str, Any]:
    return {"x": x}


def _dies() -> dict[str, Any]:
    os._exit(3)


def test_a_figure_run_in_a_fresh_process_returns_its_result() -> None:
    assert in_process(_answers, 7) == {"x": 7}


def test_a_figure_whose_process_dies_is_named_instead_of_waited_for_forever() -> None:
    with pytest.raises(RuntimeError, match=r"_dies ended without a result \(exit code 3\)"):
        in_process(_dies)
