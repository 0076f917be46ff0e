"""Freed memory kept for reuse: arrays made and dropped again and again fault no new pages in."""

from __future__ import annotations

import subprocess
import sys

# Four 8 MB arrays made, filled and dropped ten times; the page faults of the last nine printed.
_CHURN = """
import resource, sys
import numpy as np
from bot.core import heap
if sys.argv[1] == "keep":
    assert heap.keep_freed()
def churn():
    arrays = [np.ones(1 << 20) for _ in range(4)]
    del arrays
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(9):
    churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    """Page faults of the churn in a fresh process (the setting is process-wide)."""
    done = subprocess.run(
        [sys.executable, "-c", _CHURN, mode], capture_output=True, text=True, check=True, timeout=60
    )
    return int(done.stdout)


def test_kept_heap_refills_freed_arrays_without_faulting_pages_in() -> None:
    kept, default = faults("keep"), faults("default")
    assert default > 9 * 1024  # by default glibc gives back and faults in again 4 MB a round, at least
    assert kept < default // 20
