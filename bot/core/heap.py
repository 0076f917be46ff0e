"""Freed memory kept for reuse in a process that makes and drops large arrays all the time.

A forget's cutting processes (bot.core.blockwriter) decode a window of 512 blocks into arrays of
megabytes, cut them and drop them, window after window. glibc's malloc gives memory freed at the
top of its heap back to the system, so each window faulted its pages in afresh, each zeroed by
the kernel: cutting the 97,000 blocks of a 1,000,000-message chain in one process made 239,000-
307,000 page faults in 4.2-4.4 s of CPU; with the settings below 3,300, in 2.6-3.2 s (peak RSS
158 -> 161 MB). An import and live learning measured no faster with them (benchmarks/README.md).
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_BYTES = 32 << 20  # a block larger than this still gets pages of its own, given back when freed
TRIM_BYTES = 256 << 20  # freed memory at the heap's top kept up to this much


def keep_freed() -> bool:
    """Have this process's malloc keep freed memory for reuse (up to TRIM_BYTES at the heap's top).

    True when applied; False under another C library than glibc, which is left as it is.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt  # this process's own symbols: its C library's
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))
